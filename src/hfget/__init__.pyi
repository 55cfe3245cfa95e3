# Types of the lazily loaded public API (hfget/__init__.py loads them on first access).
from . import errors as errors
from .api import hf_hub_download as hf_hub_download
from .api import snapshot_download as snapshot_download

__version__: str
__all__: list[str]
