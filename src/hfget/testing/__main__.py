"""`python -m hfget.testing`: serve the hub simulator (for `make demo` and manual experiments only)."""

from .hubsim import main

main()
