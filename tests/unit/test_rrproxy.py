"""The round-robin TCP proxy used by multi-instance end-to-end tests (tests/e2e/rrproxy.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.rrproxy import RoundRobinProxy, main

ROOT = Path(__file__).resolve().parents[2]


class Backend:
    """A tiny aiohttp server that says who it is and echoes what it is sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> Backend:
        async def who(_request: web.Request) -> web.Response:
            return web.Response(text=self.name)

        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            return web.Response(body=body, headers={"X-Backend": self.name})

        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/", who)
        app.router.add_post("/echo", echo)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


@pytest.fixture
async def backends() -> AsyncIterator[tuple[Backend, Backend]]:
    a, b = await Backend("a").start(), await Backend("b").start()
    yield a, b
    await a.stop()
    await b.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A new connection per request, as the proxy balances connections, not requests.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


async def get(http: aiohttp.ClientSession, proxy: RoundRobinProxy) -> str:
    async with http.get(f"http://{proxy.host}:{proxy.port}/") as response:
        return await response.text()


async def test_connections_alternate_between_backends(backends, http):
    a, b = backends
    async with RoundRobinProxy([a.address, b.address]) as proxy:
        seen = [await get(http, proxy) for _ in range(6)]
        assert seen == ["a", "b", "a", "b", "a", "b"]
        assert proxy.counts == {a.address: 3, b.address: 3}
        assert proxy.failures == {} and proxy.refused == 0
        assert proxy.report() == (
            f"127.0.0.1:{a.port} 3 (failed connects 0); 127.0.0.1:{b.port} 3 (failed connects 0); refused 0"
        )


async def test_a_dead_backend_is_skipped_and_counted(backends, http):
    a, b = backends
    async with RoundRobinProxy([a.address, b.address]) as proxy:
        await b.stop()
        seen = await asyncio.gather(*(get(http, proxy) for _ in range(6)))  # at once
        assert seen == ["a"] * 6
        assert proxy.counts[a.address] == 6 and proxy.counts[b.address] == 0
        assert proxy.failures[b.address] == 3 and proxy.refused == 0  # every other connection tried b first


async def test_with_no_backend_up_the_client_is_disconnected_and_the_proxy_keeps_serving(backends, http):
    a, b = backends
    await a.stop()
    await b.stop()
    async with RoundRobinProxy([a.address, b.address]) as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed without an answer
        writer.close()
        assert proxy.refused == 1 and proxy.failures == {a.address: 1, b.address: 1}
        await a.start()  # same port again
        assert await get(http, proxy) == "a"


async def test_large_bodies_pass_intact_both_ways(backends, http):
    a, b = backends
    body = os.urandom(3 * 1024 * 1024 + 17)
    async with RoundRobinProxy([a.address, b.address]) as proxy:
        for expected in ("a", "b"):
            async with http.post(f"http://{proxy.host}:{proxy.port}/echo", data=body) as response:
                assert response.headers["X-Backend"] == expected
                echoed = await response.read()
            assert hashlib.sha256(echoed).digest() == hashlib.sha256(body).digest()


async def test_closing_the_proxy_cuts_open_connections(backends):
    a, _b = backends
    proxy = RoundRobinProxy([a.address])
    await proxy.start()
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    await asyncio.sleep(0.05)  # the proxy has connected it upstream
    assert proxy.counts[a.address] == 1
    await asyncio.wait_for(proxy.close(), timeout=5)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()


def test_bad_addresses_are_refused_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["127.0.0.1"])
    assert "is not HOST:PORT, e.g. 127.0.0.1:8081" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one backend"):
        RoundRobinProxy([])


async def test_command_line_prints_its_port_and_the_counts_when_stopped(backends, http):
    a, b = backends
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.e2e.rrproxy", f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        for expected in ("a", "b", "a"):
            async with http.get(f"http://127.0.0.1:{port}/") as response:
                assert await response.text() == expected
        proc.send_signal(signal.SIGTERM)
        out = (await asyncio.wait_for(proc.stdout.read(), timeout=10)).decode()
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert f"127.0.0.1:{a.port} 2 (failed connects 0); 127.0.0.1:{b.port} 1 (failed connects 0)" in out
