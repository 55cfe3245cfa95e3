"""Names every test shares: the demo repos and their cache folders, the simulator's tokens, and what only some
platforms have (the same suite runs on Windows and macOS runners, .github/workflows/ci.yml)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from hfget.testing.simrepo import DEMO_DATASET, DEMO_MODEL

MODEL = DEMO_MODEL
DATASET = DEMO_DATASET
# Their folders in a Hugging Face cache.
MODEL_DIR = "models--" + MODEL.replace("/", "--")
DATASET_DIR = "datasets--" + DATASET.replace("/", "--")

# The same suite runs on Windows and macOS runners (.github/workflows/ci.yml). What only some platforms have:
POSIX = os.name == "posix"


LINUX = sys.platform.startswith("linux")


needs_posix_signals = pytest.mark.skipif(
    not POSIX, reason="sends SIGKILL / SIGINT / SIGTERM to one process: Windows has no such signals (only termination)")


needs_linux = pytest.mark.skipif(
    not LINUX, reason="the non-POSIX stand-in (tests/nonposix_site) builds msvcrt's locks from Linux OFD locks")


# kill -9: on Windows, Popen.send_signal(SIGTERM) is TerminateProcess, which is just as abrupt.
SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)


VALID_TOKEN = "hf_simTokenAliceAAAABBBBCCCCDDDDEEEE1234"


GATED_TOKEN = "hf_simTokenBobGatedAAAABBBBCCCCDDDD5678"
