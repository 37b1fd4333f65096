"""A TCP round-robin proxy, for end-to-end tests that run several bot instances behind one address.

Each incoming connection goes to the next backend in turn (so with HTTP, give clients a fresh
connection per request if requests should alternate); a backend that refuses the connection is
skipped for that connection and counted, and the next one is tried. Bytes are copied both ways
untouched, half-closes included. ``counts`` and ``failures`` say how the connections were spread.

In a test::

    async with RoundRobinProxy([("127.0.0.1", 8081), ("127.0.0.1", 8082)]) as proxy:
        ...  # point the client at proxy.host:proxy.port
        print(proxy.report())

From a shell (prints ``listening on HOST:PORT`` once ready and the counts when stopped)::

    python -m tests.e2e.rrproxy --listen 127.0.0.1:8443 127.0.0.1:8081 127.0.0.1:8082
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Self

Address = tuple[str, int]
CHUNK = 64 * 1024


class RoundRobinProxy:
    def __init__(
        self, backends: Sequence[Address], *, host: str = "127.0.0.1", port: int = 0, connect_timeout: float = 2.0
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.backends = [(h, int(p)) for h, p in backends]
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.counts: Counter[Address] = Counter({b: 0 for b in self.backends})  # connections forwarded
        self.failures: Counter[Address] = Counter()  # connect attempts that failed
        self.refused = 0  # incoming connections closed because no backend answered
        self._next = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut the connections still open."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def report(self) -> str:
        parts = [f"{h}:{p} {self.counts[(h, p)]} (failed connects {self.failures[(h, p)]})" for h, p in self.backends]
        return "; ".join(parts) + f"; refused {self.refused}"

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to this connection's backend in turn, or to the ones after it if it refuses."""
        first = self._next
        self._next = (self._next + 1) % len(self.backends)
        for i in range(len(self.backends)):
            backend = self.backends[(first + i) % len(self.backends)]
            try:
                streams = await asyncio.wait_for(asyncio.open_connection(*backend), self.connect_timeout)
            except (OSError, TimeoutError):
                self.failures[backend] += 1
                continue
            self.counts[backend] += 1
            return streams
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream = await self._open_upstream()
            if upstream is None:
                self.refused += 1
                return
            upstream_reader, upstream_writer = upstream
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the half-close on; a reset ends this direction quietly."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8081")
    return host, int(port)


async def _serve(listen: Address, backends: list[Address]) -> None:
    proxy = RoundRobinProxy(backends, host=listen[0], port=listen[1])
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"listening on {proxy.host}:{proxy.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await proxy.close()
        print("connections per backend: " + proxy.report(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.rrproxy", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free)")
    parser.add_argument("backends", type=_address, nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.listen, args.backends))
    except OSError as exc:
        sys.exit(f"rrproxy: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
