#!/usr/bin/env python3
"""A TCP forwarder that delays each direction by a fixed time: a distant server on this machine.

    python benchmarks/delaylink.py --listen 18700 --to 127.0.0.1:18600 --delay 0.05   # 100 ms round trip

netem is not available in these kernels, so the delay is added here: every chunk read from one side is written
to the other `delay` seconds after it arrived, in order, without holding back later chunks (the link keeps its
bandwidth, only its latency grows). It counts the TCP connections it accepted (`connections`, printed on SIGUSR1
and at exit, and written to --count-file after every accept), which is how the benchmark counts the connections each
tool opened to the hub. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import time
from pathlib import Path


class DelayLink:
    def __init__(self, target: tuple[str, int], delay: float, count_file: Path | None = None) -> None:
        self.target, self.delay, self.count_file = target, delay, count_file
        self.connections = 0

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(self._accepted, host, port, backlog=1024)
        async with server:
            await server.serve_forever()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.count_file is not None:
            self.count_file.write_text(f"{self.connections}\n")
        await asyncio.sleep(self.delay)  # the client's SYN crossed the link: connecting costs a round trip
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
            try:
                writer.write_eof()
            except OSError:
                pass

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(256 * 1024):
                queue.put_nowait((time.monotonic() + self.delay, data))
        except OSError:
            pass
        queue.put_nowait((time.monotonic() + self.delay, None))
        try:
            await sender
        except OSError:
            pass
        writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--to", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added to each direction")
    parser.add_argument("--count-file", type=Path, help="write the number of accepted connections here")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    link = DelayLink((host, int(port)), args.delay, args.count_file)
    signal.signal(signal.SIGUSR1, lambda *_: print(f"connections {link.connections}", flush=True))
    try:
        asyncio.run(link.serve("127.0.0.1", args.listen))
    except KeyboardInterrupt:
        pass
    print(f"connections {link.connections}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
