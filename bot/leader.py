"""Leadership: exactly one bot instance runs the scheduler and the outbox sender at a time.

Every instance answers updates; only the *leader* also runs the background services (the
APScheduler jobs and the delivery engine). Which instance leads is decided by PostgreSQL:

* **PostgreSQL.** The leader holds a session-level advisory lock, ``pg_try_advisory_lock(key)``,
  on a dedicated connection of its own (a raw asyncpg connection built from ``DATABASE_URL`` with
  SQLAlchemy's own URL translation, outside the request pool, so no checkout, recycle or
  ``pool_pre_ping`` ever touches it). Standbys try the same lock every ``LEADER_RETRY`` seconds.
  The holder checks every ``LEADER_RETRY`` seconds that its connection is alive and still holds
  the lock, and also hears at once when the socket closes. When the connection is lost
  (PostgreSQL restarted, network cut, backend terminated) it steps down at once: it stops the
  services, then goes back to trying. When the holder's process dies (``SIGKILL``, crash, machine
  off), its socket closes, PostgreSQL ends the session and frees the lock, and a standby takes over
  within one retry interval. A holder cut off by a silent network failure stops itself after
  ``check_timeout``; the server side drops the orphaned session through TCP keepalives (set on
  this connection to about 25 s), after which a standby takes over. The connection shows up in
  ``pg_stat_activity`` as ``application_name = 'prolita-leader <instance id>'``.

  Advisory locks live per database, so two deployments in different databases never contend.
  ``DATABASE_URL`` must reach PostgreSQL directly or through a *session*-pooling proxy: a
  transaction-pooling PgBouncer cannot keep a session lock (the holder notices: the lock check
  fails and it steps down).

* **SQLite** (one machine, one instance): this instance is always the leader, at once.

Order of a hand-over: a leader that steps down voluntarily (``stop()``) first stops its services
(``on_deposed`` returns only when they are stopped) and only then releases the lock, so no other
instance can start sending before it has stopped. When the connection is *lost*, PostgreSQL may
already have freed the lock (a restart frees every lock), so another instance may start a moment
before this one has finished stopping. That brief overlap is safe, and the lock is about not doing
the work twice rather than about correctness alone: the outbox sender claims each row in its own
transaction (``FOR UPDATE SKIP LOCKED`` and a lease in ``claimed_until``, see
``bot/notifier.py``), so two senders never take the same row, and every scheduled job is one
idempotent transaction whose unique keys decide (see ``bot/scheduler.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as AsyncpgDialect
from sqlalchemy.engine import make_url

from bot.config import default_instance_id
from storage.db import is_sqlite

log = logging.getLogger("prolita.leader")

# b"prolita" read as a big-endian integer; any 64-bit value works, every instance must use the same.
LOCK_KEY = int.from_bytes(b"prolita", "big")
BIGINT = (-(2**63), 2**63 - 1)
# Server-side TCP keepalives on the lock connection: a holder that vanished without closing its
# socket (cable pulled, VM frozen) loses the lock after about idle + interval × count seconds.
KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}

Callback = Callable[[], Awaitable[None]]


class Leadership:
    """Elect this instance leader (or not) and run ``on_elected`` / ``on_deposed`` accordingly.

    ``run(on_elected, on_deposed)`` runs until ``stop()``: ``on_elected`` starts the leader's
    services and returns; ``on_deposed`` stops them and returns when they are stopped (both may
    run several times in one process: leadership can be lost and won again). ``is_leader`` tells
    the current state (for readiness probes and metrics).
    """

    def __init__(
        self,
        database_url: str,
        *,
        instance_id: str | None = None,
        retry: float = 2.0,
        lock_key: int = LOCK_KEY,
        check_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        if retry <= 0:
            raise ValueError("retry must be a positive number of seconds")
        if not BIGINT[0] <= lock_key <= BIGINT[1]:
            raise ValueError("lock_key must fit in a signed 64-bit integer")
        self.database_url = database_url
        self.instance_id = instance_id or default_instance_id()
        self.retry = retry
        self.lock_key = lock_key
        # Generous, so that a busy server does not make a healthy leader flap.
        self.check_timeout = check_timeout if check_timeout is not None else max(5.0, 2 * retry)
        self.connect_timeout = connect_timeout if connect_timeout is not None else max(5.0, 2 * retry)
        self.single_instance = is_sqlite(database_url)
        self._is_leader = False
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        self._conn: Any = None  # asyncpg.Connection (imported lazily: SQLite installs never need it)
        self._unreachable_logged = False
        self._standby_logged = False

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    @property
    def backend_pid(self) -> int | None:
        """PostgreSQL's process id for the lock connection (what ``pg_locks.pid`` shows), if any."""
        if self._conn is None or self._conn.is_closed():
            return None
        return self._conn.get_server_pid()

    def stop(self) -> None:
        """Ask ``run`` to step down (services stopped, then the lock released) and return."""
        self._stop.set()

    async def run(self, on_elected: Callback, on_deposed: Callback) -> None:
        if self.single_instance:
            await self._lead(on_elected, on_deposed, watch=self._until_stopped)
            return
        try:
            while not self._stop.is_set():
                conn = await self._connection()
                if conn is not None and await self._try_lock(conn):
                    if self._stop.is_set():
                        break  # stopped while asking: closing the connection below lets go of the lock
                    await self._lead(on_elected, on_deposed, watch=self._watch)
                    if not self._stop.is_set():
                        await self._wait(self.retry)  # after losing the lead, give others a turn first
                else:
                    await self._wait(self.retry)
        finally:
            await self._close()

    # -- leading ---------------------------------------------------------------------------------

    async def _lead(
        self, on_elected: Callback, on_deposed: Callback, watch: Callable[[], Awaitable[str | None]]
    ) -> None:
        """Start the services, hold the lead until ``watch`` returns, then stop them and let go."""
        self._is_leader = True
        self._standby_logged = False
        log.info("instance %s is now the leader (scheduler + outbox sender)", self.instance_id)
        reason: str | None = "cancelled"
        try:
            try:
                await on_elected()
            except Exception:
                log.exception("instance %s could not start the leader's services; giving up the lead", self.instance_id)
                reason = "the services failed to start"
            else:
                reason = await watch()
        finally:
            # Also on cancellation: the services stop before the lock can go to anyone else.
            self._is_leader = False
            if reason is not None:  # lost, not asked to stop: another instance may take over from now on
                log.info("instance %s is stepping down (%s); stopping its services", self.instance_id, reason)
            try:
                await on_deposed()
            except Exception:
                log.exception("instance %s: stopping the leader's services failed", self.instance_id)
            finally:
                await self._release(graceful=reason is None)
        log.info("instance %s stepped down (%s)", self.instance_id, reason or "stopping")

    async def _until_stopped(self) -> None:
        await self._stop.wait()

    async def _watch(self) -> str | None:
        """Return when stopping (None) or when the lock may be lost (the reason)."""
        while True:
            stop = asyncio.ensure_future(self._stop.wait())
            lost = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait({stop, lost}, timeout=self.retry, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                lost.cancel()
            if self._stop.is_set():
                return None
            if self._lost.is_set():
                return "connection to PostgreSQL lost"
            try:
                held = await self._conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                    " AND granted AND objsubid = 1 AND classid::int8 = $1 AND objid::int8 = $2",
                    (self.lock_key >> 32) & 0xFFFFFFFF,
                    self.lock_key & 0xFFFFFFFF,
                    timeout=self.check_timeout,
                )
            except Exception as exc:  # asyncpg errors, OSError, TimeoutError: the connection is unusable
                return f"lock check failed: {exc!r}"
            if not held:
                return "the lock is no longer held on this connection (a transaction-pooling proxy?)"

    async def _release(self, *, graceful: bool) -> None:
        """Let go of the lock: when stopping, unlock and close politely; otherwise drop the
        connection at once (the server frees the lock when it sees the socket close, if it still
        has the session at all)."""
        if self._conn is None:
            return
        if graceful and not self._lost.is_set():
            with suppress(Exception):  # closing below frees it anyway
                await self._conn.execute("SELECT pg_advisory_unlock($1)", self.lock_key, timeout=self.check_timeout)
            await self._close()
        else:
            conn, self._conn = self._conn, None
            conn.terminate()

    # -- connection and lock ---------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        """asyncpg.connect() keywords from DATABASE_URL, translated exactly as the engine does."""
        _args, kwargs = AsyncpgDialect().create_connect_args(make_url(self.database_url))
        kwargs.pop("prepared_statement_cache_size", None)  # SQLAlchemy's adapter options, not asyncpg's
        kwargs.pop("prepared_statement_name_func", None)
        server_settings = dict(kwargs.pop("server_settings", None) or {})
        server_settings.setdefault("application_name", f"prolita-leader {self.instance_id}"[:63])
        for name, value in KEEPALIVES.items():
            server_settings.setdefault(name, value)
        kwargs["server_settings"] = server_settings
        kwargs["timeout"] = self.connect_timeout
        return kwargs

    async def _connection(self) -> Any:
        """The dedicated connection (opened if needed), or None while PostgreSQL is unreachable."""
        if self._conn is not None and not self._conn.is_closed() and not self._lost.is_set():
            return self._conn
        await self._close()
        import asyncpg

        try:
            conn = await asyncpg.connect(**self._connect_kwargs())
        except Exception as exc:
            if not self._unreachable_logged:
                log.warning(
                    "instance %s cannot reach PostgreSQL for the leader lock (%r); retrying every %.1f s",
                    self.instance_id,
                    exc,
                    self.retry,
                )
                self._unreachable_logged = True
            return None
        if self._unreachable_logged:
            log.info("instance %s reached PostgreSQL again; trying for the lead", self.instance_id)
            self._unreachable_logged = False
        self._lost = asyncio.Event()
        lost = self._lost
        conn.add_termination_listener(lambda _conn: lost.set())
        self._conn = conn
        return conn

    async def _try_lock(self, conn: Any) -> bool:
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key, timeout=self.check_timeout)
        except Exception as exc:
            log.warning("instance %s: trying the leader lock failed (%r)", self.instance_id, exc)
            await self._close()
            return False
        if not got and not self._standby_logged:
            log.info(
                "instance %s is on standby: another instance leads; retrying every %.1f s", self.instance_id, self.retry
            )
            self._standby_logged = True
        return bool(got)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), timeout=self.check_timeout)
        except Exception:
            conn.terminate()

    async def _wait(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
