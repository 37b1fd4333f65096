"""Leadership (bot/leader.py): exactly one instance runs the scheduler and the outbox sender.

PostgreSQL tests run on the real server at ``TEST_DATABASE_URL`` (skipped, with the reason shown by
``pytest -ra``, where it is absent). Advisory locks are per database and every test draws its own
random lock key, so parallel test runs on one server never contend for the same lock.
Failover times are printed (``pytest -s``) and asserted only against generous bounds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.config import ConfigError, load_settings
from bot.leader import LOCK_KEY, Leadership
from tests.conftest import TEST_DATABASE_URL, _pg_unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
RETRY = 0.3


class Services:
    """Stands in for the scheduler + outbox sender: records when they are started and stopped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.running = False
        self.log: list[tuple[str, float]] = []
        self.on_stop: Callable[[], object] | None = None
        self.fail_starts = 0

    async def start(self) -> None:
        self.log.append(("start", time.monotonic()))
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("scheduler failed to start")
        self.running = True

    async def stop(self) -> None:
        if self.on_stop is not None:
            result = self.on_stop()
            if asyncio.iscoroutine(result):
                await result
        self.running = False
        self.log.append(("stop", time.monotonic()))

    def count(self, what: str) -> int:
        return sum(1 for event, _ in self.log if event == what)


async def until(predicate: Callable[[], bool], timeout: float) -> float:
    """Wait until ``predicate()`` holds; return the moment it did (monotonic), fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic()


def random_key() -> int:
    return random.randint(1, 2**62)


@pytest.fixture
async def pg_url() -> str:
    reason = await _pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return TEST_DATABASE_URL


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A third connection, to look at pg_locks and to terminate backends."""
    url = make_url(pg_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    try:
        yield conn
    finally:
        await conn.close()


async def lock_holders(admin: asyncpg.Connection, key: int) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND classid::int8 = $1 AND objid::int8 = $2",
        (key >> 32) & 0xFFFFFFFF,
        key & 0xFFFFFFFF,
    )
    return [r["pid"] for r in rows]


class Instance:
    """A Leadership running in a task, with its recorded services."""

    def __init__(self, url: str, name: str, key: int, retry: float = RETRY) -> None:
        self.services = Services(name)
        self.leadership = Leadership(url, instance_id=name, lock_key=key, retry=retry)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Instance:
        self.task = asyncio.create_task(self.leadership.run(self.services.start, self.services.stop))
        return self

    async def stop(self) -> None:
        self.leadership.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout=15)

    @property
    def leads(self) -> bool:
        return self.leadership.is_leader and self.services.running


@pytest.fixture
async def instances() -> AsyncIterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for inst in started:
        await inst.stop()


# -- SQLite and arguments --------------------------------------------------------------------------


async def test_sqlite_instance_is_always_the_leader_at_once(tmp_path):
    inst = Instance(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", "solo", LOCK_KEY).start()
    await until(lambda: inst.leads, timeout=1)
    assert inst.leadership.backend_pid is None  # no lock, no connection
    await inst.stop()
    assert not inst.leadership.is_leader and not inst.services.running
    assert [e for e, _ in inst.services.log] == ["start", "stop"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry": 0}, "retry must be a positive"),
        ({"lock_key": 2**63}, "64-bit"),
        ({"lock_key": -(2**63) - 1}, "64-bit"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Leadership("postgresql+asyncpg://postgres@127.0.0.1/test", **kwargs)


def test_settings_name_the_instance_and_bound_the_retry_interval(monkeypatch):
    monkeypatch.delenv("INSTANCE_ID", raising=False)
    monkeypatch.delenv("LEADER_RETRY", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.leader_retry == 2.0
    assert settings.instance_id.endswith(f"-{os.getpid()}")
    assert load_settings(_env_file=None, instance_id=" bot-2 ", leader_retry="0.5").instance_id == "bot-2"
    with pytest.raises(ConfigError, match=r"LEADER_RETRY: must be seconds between 0\.2 and 60"):
        load_settings(_env_file=None, leader_retry=0)
    with pytest.raises(ConfigError, match="INSTANCE_ID: must be 1 to 40 printable characters"):
        load_settings(_env_file=None, instance_id="bot\n1")


# -- PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_of_two_instances_exactly_one_is_elected(pg_url, admin, instances):
    key = random_key()
    a = Instance(pg_url, "inst-a", key).start()
    b = Instance(pg_url, "inst-b", key).start()
    instances += [a, b]
    await until(lambda: a.leads or b.leads, timeout=5)
    await asyncio.sleep(RETRY * 4)  # the standby has tried several times meanwhile
    leader, standby = (a, b) if a.leads else (b, a)
    assert leader.leads and not standby.leadership.is_leader
    assert leader.services.count("start") == 1 and standby.services.log == []
    assert await lock_holders(admin, key) == [leader.leadership.backend_pid]
    name = await admin.fetchval(
        "SELECT application_name FROM pg_stat_activity WHERE pid = $1", leader.leadership.backend_pid
    )
    assert name == f"prolita-leader {leader.services.name}"


@pytest.mark.postgres
async def test_a_stopping_leader_stops_its_services_before_it_releases_the_lock(pg_url, admin, instances):
    key = random_key()
    a = Instance(pg_url, "inst-a", key).start()
    instances.append(a)
    await until(lambda: a.leads, timeout=5)
    b = Instance(pg_url, "inst-b", key).start()
    instances.append(b)
    await asyncio.sleep(RETRY * 2)
    assert not b.leadership.is_leader

    seen_while_stopping: dict[str, object] = {}

    async def check_while_stopping() -> None:
        await asyncio.sleep(RETRY * 3)  # a slow stop (draining jobs): nobody may take over meanwhile
        seen_while_stopping["holders"] = await lock_holders(admin, key)
        seen_while_stopping["b_leads"] = b.leadership.is_leader

    a.services.on_stop = check_while_stopping
    a_pid = a.leadership.backend_pid
    stopped_at = time.monotonic()
    await a.stop()
    assert seen_while_stopping == {"holders": [a_pid], "b_leads": False}
    elected_at = await until(lambda: b.leads, timeout=RETRY + 3)
    print(f"\nvoluntary hand-over: standby elected {elected_at - stopped_at:.2f} s after stop() (incl. 0.9 s drain)")
    assert not a.services.running and a.services.log[-1][0] == "stop"


@pytest.mark.postgres
async def test_a_holder_whose_connection_is_cut_steps_down_and_the_standby_takes_over(pg_url, admin, instances):
    key = random_key()
    a = Instance(pg_url, "inst-a", key).start()
    b = Instance(pg_url, "inst-b", key).start()
    instances += [a, b]
    await until(lambda: a.leads or b.leads, timeout=5)
    holder, standby = (a, b) if a.leads else (b, a)

    # What a PostgreSQL restart does to the holder's session: the server ends it.
    cut_at = time.monotonic()
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", holder.leadership.backend_pid)
    stepped_down_at = await until(lambda: not holder.services.running, timeout=RETRY + 2)
    elected_at = await until(lambda: standby.leads, timeout=RETRY + 3)
    print(
        f"\nconnection cut: holder stepped down after {stepped_down_at - cut_at:.3f} s, "
        f"standby elected after {elected_at - cut_at:.2f} s (LEADER_RETRY={RETRY})"
    )
    assert stepped_down_at - cut_at < 1.0  # heard from the socket, not from the next check
    assert not holder.leadership.is_leader
    # The old holder reconnects and stands by; it does not take the lead back.
    await asyncio.sleep(RETRY * 4)
    assert standby.leads and not holder.leadership.is_leader and holder.services.count("start") == 1
    assert await lock_holders(admin, key) == [standby.leadership.backend_pid]


CHILD = """
import asyncio, sys
from bot.leader import Leadership

async def main():
    leadership = Leadership(sys.argv[1], instance_id="doomed", lock_key=int(sys.argv[2]), retry=0.2)

    async def elected():
        print("elected", leadership.backend_pid, flush=True)

    async def deposed():
        print("deposed", flush=True)

    await leadership.run(elected, deposed)

asyncio.run(main())
"""


@pytest.mark.postgres
async def test_when_the_holder_process_is_killed_a_standby_takes_over_within_the_retry_interval(
    pg_url, admin, instances
):
    key = random_key()
    retry = 2.0  # the default LEADER_RETRY: the figure reported in the README
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, pg_url, str(key),
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), timeout=20)).decode().split()
        assert line[0] == "elected", line
        assert await lock_holders(admin, key) == [int(line[1])]
        standby = Instance(pg_url, "standby", key, retry=retry).start()
        instances.append(standby)
        await asyncio.sleep(0.3)  # it has tried once, at start
        assert not standby.leadership.is_leader
        await asyncio.sleep(random.uniform(0, retry))  # kill at any point of the standby's retry cycle
        assert not standby.leadership.is_leader

        killed_at = time.monotonic()
        child.kill()  # SIGKILL: no clean-up, the socket just closes
        await child.wait()
        elected_at = await until(lambda: standby.leads, timeout=retry + 3)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    failover = elected_at - killed_at
    print(f"\nholder process killed (SIGKILL): standby elected after {failover:.2f} s (LEADER_RETRY={retry})")
    assert failover < retry + 1.5
    assert await lock_holders(admin, key) == [standby.leadership.backend_pid]


@pytest.mark.postgres
async def test_services_that_fail_to_start_give_the_lead_back_and_it_is_tried_again(pg_url, admin, instances, caplog):
    key = random_key()
    a = Instance(pg_url, "inst-a", key)
    a.services.fail_starts = 1
    instances.append(a.start())
    with caplog.at_level(logging.INFO, logger="prolita.leader"):
        await until(lambda: a.leads, timeout=RETRY * 2 + 5)
    assert [e for e, _ in a.services.log] == ["start", "stop", "start"]  # stopped what half-started
    assert "could not start the leader's services" in caplog.text
    assert "stepped down (the services failed to start)" in caplog.text
    assert await lock_holders(admin, key) == [a.leadership.backend_pid]


@pytest.mark.postgres
async def test_an_unreachable_database_is_retried_quietly_and_never_elects(pg_url, instances, caplog):
    # A port nobody listens on: the instance keeps trying, leads nothing, and stops when asked.
    url = make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    a = Instance(url, "inst-a", random_key(), retry=0.1)
    a.leadership.connect_timeout = 1
    with caplog.at_level(logging.WARNING, logger="prolita.leader"):
        instances.append(a.start())
        await asyncio.sleep(0.6)
    assert not a.leadership.is_leader and a.services.log == []
    warnings = [r for r in caplog.records if "cannot reach PostgreSQL" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per attempt
    started = time.monotonic()
    await a.stop()
    assert time.monotonic() - started < 2
