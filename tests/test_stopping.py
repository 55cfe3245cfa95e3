"""Stopping is immediate and quiet: Ctrl-C or a fatal error (a full disk: test_local_faults.py) wakes connections
blocked in a read or in a retry pause at once; the partial is saved; connections our own stop broke are not reported
as server failures.

Time bounds here are generous multiples of what the user is promised (exit within 1 s of Ctrl-C, the disk-full
error within 2 s), because this machine is shared and loaded; they still fail where a stop waits for a stalled read
(the 30 s read timeout), a 60 s Retry-After, or the 5 s the engine allows threads to finish."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time

import pytest

from hfget.engine.resume_state import state_path
from hfget.net.http import Cancelled, HttpClient
from hfget.net.proxy import NO_PROXY_CONFIG, Proxy, ProxyConfig
from support import MODEL, MODEL_DIR, hfget_partials, hfget_process, misbehaving_server, pproxy


def _files(sim):
    repo = sim.repo(MODEL)
    return repo.commits[repo.refs["main"]]


def test_ctrl_c_stops_at_once_without_blaming_the_server(sim, cache):
    weights = _files(sim)["model.safetensors"]
    sim.rate_limit = 1_000_000  # per connection: the download is in full flow when the signal comes
    # At the signal: connections stalled past 3/4 of the weights (never served), one small file in a 60 s Retry-After
    # pause inside the HTTP client, the rest reading throttled bodies.
    sim.add_fault("stall", "model.safetensors", where="cdn", at=weights.size * 3 // 4)
    sim.add_fault("status", "tokenizer/vocab.txt", status=503, retry_after="60", times=1)
    process = hfget_process("download", MODEL, "--endpoint", sim.url, "--cache-dir", cache, "--connections", "8")
    deadline = time.monotonic() + 60
    while sim.body_bytes_served("/cdn/*") < weights.size // 2 or not sim.requests_for("*/vocab.txt", "GET"):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the download never got halfway"
        time.sleep(0.02)
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # show where it hangs: faulthandler dumps every thread on SIGABRT
        process.send_signal(signal.SIGABRT)
        pytest.fail(f"hfget did not stop within 30 s of Ctrl-C:\n{process.communicate(timeout=10)[1][-6000:]}")
    stopped = time.monotonic() - signalled
    _, err = process.communicate()
    assert process.returncode == 130, err
    assert stopped < 3.0, f"took {stopped:.1f} s to stop"  # promised: 1 s (3x margin for a loaded machine)
    lines = err.splitlines()
    assert not [line for line in lines if "retry" in line or "FAILED" in line], err  # our stop broke those
    assert "Run the same command again to resume" in err
    (partial,) = hfget_partials(cache / MODEL_DIR / "blobs", weights.etag)
    assert json.loads(state_path(partial).read_text())["done"]  # what arrived is recorded for the next run


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "through-pproxy"])
def test_a_stop_wakes_a_request_the_server_never_answers(tmp_path, through_proxy):
    """A server that accepts and holds the request (no headers yet): a stop ends the wait at once, on the direct
    urllib3 pool and on requests' pools through a proxy alike, and the client makes no new request after it."""
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(misbehaving_server("hang"))
        proxy = NO_PROXY_CONFIG
        if through_proxy:
            tunnel = stack.enter_context(pproxy(port, tmp_path / "pproxy.log"))
            proxy = ProxyConfig(http=Proxy(f"http://127.0.0.1:{tunnel}", "HFGET_PROXY", "flag"))
        client = HttpClient(proxy=proxy, read_timeout=60)
        outcome: list[BaseException] = []

        def ask() -> None:
            try:
                client.request("GET", f"http://held.invalid:{port}/file" if through_proxy else
                               f"http://127.0.0.1:{port}/file", stream=True)
            except BaseException as error:  # noqa: BLE001 - whatever it is, the test reports it
                outcome.append(error)

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        time.sleep(0.5)  # the request is out, waiting for headers that never come
        stopped = time.monotonic()
        client.interrupt()
        asking.join(10)
        assert not asking.is_alive() and time.monotonic() - stopped < 2.0  # not the 60 s read timeout
        assert outcome  # it failed (a stop, or the connection the stop broke), it did not return a response
        with pytest.raises(Cancelled):
            client.request("GET", f"http://127.0.0.1:{port}/again")
        client.close()
