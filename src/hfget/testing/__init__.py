"""The hub simulator, for hfget's own tests and `make demo` only: not part of hfget's public interface.

Nothing shipped imports it (an import-linter contract in pyproject.toml holds that). Start it with
`python -m hfget.testing --demo` or from a test through `hubsim.HubSimulator`.
"""
