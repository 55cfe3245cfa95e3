"""hfget: fetch Hugging Face models through whatever route works here, into the standard cache."""

__version__ = "0.1.0"
