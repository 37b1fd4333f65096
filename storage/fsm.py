"""aiogram FSM storage in the application database (table ``fsm_states``), so dialogs survive restarts.

One row per storage key holds both the state and the data. Every write is one short transaction
(opened with :func:`storage.db.begin_write`, so SQLite takes its write lock up front) using the
dialect's ``INSERT ... ON CONFLICT DO UPDATE``. A row whose state is ``None`` and whose data is
empty is deleted, which keeps the table as small as the number of open dialogs.

``update_data`` is atomic: the read-modify-write happens inside one write transaction with the
row locked (``ON CONFLICT DO UPDATE`` on PostgreSQL locks it; on SQLite the whole database is
locked by ``BEGIN IMMEDIATE``), so concurrent updates of the same key never lose each other's keys.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import quote

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, KeyBuilder, StateType, StorageKey
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from storage.db import begin_write
from storage.models import FSMRecord, utcnow

__all__ = ["DeferredStorage", "SQLKeyBuilder", "SQLStorage", "deferred_scope"]

_KEY_MAX = 255  # length of fsm_states.key
_TABLE = FSMRecord.__table__


class SQLKeyBuilder(KeyBuilder):
    """Unambiguous key: every StorageKey field has a fixed position (``None`` thread is empty).

    Format: ``fsm:<bot_id>:<chat_id>:<user_id>:<thread_id|>:<business_connection_id|>:<destiny>``,
    with the two free-text fields percent-encoded so a ``:`` inside them cannot shift the fields.
    (aiogram's ``DefaultKeyBuilder`` leaves out absent optional parts, so a business key and a
    thread key of different chats could render the same string.)
    """

    def __init__(self, prefix: str = "fsm") -> None:
        self.prefix = prefix

    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        parts = [
            self.prefix,
            str(key.bot_id),
            str(key.chat_id),
            str(key.user_id),
            "" if key.thread_id is None else str(key.thread_id),
            quote(key.business_connection_id or "", safe=""),
            quote(key.destiny, safe=""),
        ]
        if part:
            parts.append(part)
        return ":".join(parts)


def _state_str(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


def _json_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-normalised copy: what is stored is exactly what a later read returns."""
    try:
        return json.loads(json.dumps(dict(data), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"FSM data must be JSON-serialisable: {exc}") from exc


def _check_dict(data: Any) -> None:
    if not isinstance(data, dict):
        raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data).__name__}")


class _Entry:
    """One key's dialog state and data in an update, and what the database holds (``saved_*``)."""

    __slots__ = ("data", "saved_data", "saved_state", "state")

    def __init__(self, state: str | None, data: dict[str, Any]) -> None:
        self.state, self.data = state, data
        self.saved_state, self.saved_data = state, _json_copy(data)

    @property
    def dirty(self) -> bool:
        # Compared with what is stored, so setting a value back (or to what it was) writes nothing.
        return self.state != self.saved_state or self.data != self.saved_data

    def saved(self) -> None:
        self.saved_state, self.saved_data = self.state, _json_copy(self.data)


class FSMBuffer:
    """Write-back cache of one update's FSM changes, committed with the update's own effects.

    Inside an update (see :func:`update_scope`), ``SQLStorage`` reads through this buffer and
    writes only to it; the changes reach the database in the update's transaction (via
    :func:`flush_into`, called from the session's ``before_commit``), together with the update's
    other writes and its handled-update mark. A crash before that commit leaves the dialog
    exactly where it was, so the re-delivered update is handled again from the same step.
    """

    def __init__(self, session: AsyncSession | None = None) -> None:
        self.entries: dict[str, _Entry] = {}
        # The handler set its dialog's state or data, even to what it was: the update counts as
        # handled (storage/handled.py), so a re-delivered /start or /batal is not answered twice.
        self.touched = False
        # The update's own session: states are read through it, so an update never holds a second
        # pooled connection while keeping its first (under a surge that exhausted the pool and
        # every update waited for a connection held by another waiting update).
        self.session = session

    @property
    def dirty(self) -> bool:
        return any(e.dirty for e in self.entries.values())


_BUFFER: contextvars.ContextVar[FSMBuffer | None] = contextvars.ContextVar("prolita_fsm_buffer", default=None)
# What aiogram's FSM middleware read (state and data in one query) before the update's scope opened;
# the scope takes it over, so the dialog is read once per update.
_PREFETCH: contextvars.ContextVar[dict[str, _Entry] | None] = contextvars.ContextVar(
    "prolita_fsm_prefetch", default=None
)


@contextlib.contextmanager
def update_scope(session: AsyncSession) -> Iterator[FSMBuffer]:
    """Buffer FSM writes of the current update and commit them with ``session``."""
    buffer = FSMBuffer(session)
    prefetched = _PREFETCH.get()
    if prefetched:
        buffer.entries.update(prefetched)
        _PREFETCH.set(None)
    token = _BUFFER.set(buffer)
    session.info["fsm_buffer"] = buffer
    try:
        yield buffer
    finally:
        _BUFFER.reset(token)
        session.info.pop("fsm_buffer", None)


def _upsert(session: Session) -> Any:
    """The dialect's INSERT, for ``ON CONFLICT DO UPDATE``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(_TABLE)
    if name == "sqlite":
        return sqlite.insert(_TABLE)
    raise NotImplementedError(f"SQLStorage supports SQLite and PostgreSQL, not {name}")


def flush_into(session: Session) -> bool:
    """Apply buffered FSM changes to a sync ``session`` inside its commit; True if anything changed.

    One statement per changed key: ``INSERT … ON CONFLICT DO UPDATE`` (no read first), or a
    ``DELETE`` when the dialog ended with no data left."""
    buffer: FSMBuffer | None = session.info.get("fsm_buffer")
    if buffer is None or not buffer.dirty:
        return False
    for key, entry in buffer.entries.items():
        if not entry.dirty:
            continue
        if entry.state is None and not entry.data:
            session.execute(delete(_TABLE).where(_TABLE.c.key == key))
        else:
            ins = _upsert(session).values(key=key, state=entry.state, data=entry.data, updated_at=utcnow())
            excluded = ins.excluded
            session.execute(
                ins.on_conflict_do_update(
                    index_elements=[_TABLE.c.key],
                    set_={"state": excluded.state, "data": excluded.data, "updated_at": excluded.updated_at},
                )
            )
        entry.saved()
    return True


class SQLStorage(BaseStorage):
    """FSM storage on an ``async_sessionmaker`` (SQLite or PostgreSQL); the engine is owned elsewhere."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key_builder = key_builder or SQLKeyBuilder()

    # --- helpers ---------------------------------------------------------------------------------

    def _key(self, key: StorageKey) -> str:
        k = self.key_builder.build(key)
        if len(k) > _KEY_MAX:  # absurdly long destiny/business id: keep it unique but bounded
            k = "sha256:" + hashlib.sha256(k.encode()).hexdigest()
        return k

    @staticmethod
    def _insert(session: AsyncSession) -> Any:
        return _upsert(session.sync_session)

    # --- state -------------------------------------------------------------------------------------

    async def _entry(self, buffer: FSMBuffer, k: str) -> _Entry:
        entry = buffer.entries.get(k)
        if entry is None:
            query = select(_TABLE.c.state, _TABLE.c.data).where(_TABLE.c.key == k)
            if buffer.session is not None:
                row = (await buffer.session.execute(query)).first()
            else:
                async with self.sessionmaker() as s:
                    row = (await s.execute(query)).first()
            entry = _Entry(row.state, dict(row.data or {})) if row else _Entry(None, {})
            buffer.entries[k] = entry
        return entry

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        k = self._key(key)
        value = _state_str(state)
        if (buffer := _BUFFER.get()) is not None:
            (await self._entry(buffer, k)).state = value
            buffer.touched = True
            return
        async with self.sessionmaker() as s:
            await begin_write(s)
            if value is None:
                data = await s.scalar(
                    update(_TABLE)
                    .where(_TABLE.c.key == k)
                    .values(state=None, updated_at=utcnow())
                    .returning(_TABLE.c.data)
                )
                if data is not None and not data:  # row existed and is now empty
                    await s.execute(delete(_TABLE).where(_TABLE.c.key == k))
            else:
                ins = self._insert(s).values(key=k, state=value, data={}, updated_at=utcnow())
                await s.execute(
                    ins.on_conflict_do_update(
                        index_elements=[_TABLE.c.key],
                        set_={"state": ins.excluded.state, "updated_at": ins.excluded.updated_at},
                    )
                )
            await s.commit()

    async def get_state(self, key: StorageKey) -> str | None:
        k = self._key(key)
        if (buffer := _BUFFER.get()) is not None:
            return (await self._entry(buffer, k)).state
        # Outside an update's scope: aiogram's FSM middleware, just before the scope opens. State and
        # data are read together and handed to the scope (one query per update instead of two).
        async with self.sessionmaker() as s:
            row = (await s.execute(select(_TABLE.c.state, _TABLE.c.data).where(_TABLE.c.key == k))).first()
        entry = _Entry(row.state, dict(row.data or {})) if row else _Entry(None, {})
        prefetched = _PREFETCH.get()
        if prefetched is None:
            prefetched = {}
            _PREFETCH.set(prefetched)
        prefetched[k] = entry
        return entry.state

    # --- data --------------------------------------------------------------------------------------

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        _check_dict(data)
        value = _json_copy(data)
        k = self._key(key)
        if (buffer := _BUFFER.get()) is not None:
            (await self._entry(buffer, k)).data = value
            buffer.touched = True
            return
        async with self.sessionmaker() as s:
            await begin_write(s)
            if not value:
                row = (
                    await s.execute(
                        update(_TABLE)
                        .where(_TABLE.c.key == k)
                        .values(data={}, updated_at=utcnow())
                        .returning(_TABLE.c.state)
                    )
                ).first()
                if row is not None and row.state is None:
                    await s.execute(delete(_TABLE).where(_TABLE.c.key == k))
            else:
                ins = self._insert(s).values(key=k, state=None, data=value, updated_at=utcnow())
                await s.execute(
                    ins.on_conflict_do_update(
                        index_elements=[_TABLE.c.key],
                        set_={"data": ins.excluded.data, "updated_at": ins.excluded.updated_at},
                    )
                )
            await s.commit()

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        if (buffer := _BUFFER.get()) is not None:
            return _json_copy((await self._entry(buffer, self._key(key))).data)
        async with self.sessionmaker() as s:
            data = await s.scalar(select(_TABLE.c.data).where(_TABLE.c.key == self._key(key)))
        return dict(data) if data else {}  # freshly decoded from the row: callers own it

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        _check_dict(data)
        patch = _json_copy(data)
        k = self._key(key)
        if (buffer := _BUFFER.get()) is not None:
            entry = await self._entry(buffer, k)
            entry.data = {**entry.data, **patch}
            buffer.touched = True
            return _json_copy(entry.data)
        async with self.sessionmaker() as s:
            await begin_write(s)
            # Create-or-lock in one statement: a no-op ON CONFLICT update takes the row lock on
            # PostgreSQL (waiting for a concurrent writer) and returns the latest committed row.
            ins = self._insert(s).values(key=k, state=None, data={}, updated_at=utcnow())
            row = (
                await s.execute(
                    ins.on_conflict_do_update(index_elements=[_TABLE.c.key], set_={"state": _TABLE.c.state}).returning(
                        _TABLE.c.state, _TABLE.c.data
                    )
                )
            ).one()
            merged = dict(row.data or {})
            merged.update(patch)
            if not merged and row.state is None:
                await s.execute(delete(_TABLE).where(_TABLE.c.key == k))
            else:
                await s.execute(update(_TABLE).where(_TABLE.c.key == k).values(data=merged, updated_at=utcnow()))
            await s.commit()
        return _json_copy(merged)

    async def close(self) -> None:
        """Nothing to close: the engine belongs to the application."""


# --- another storage (Redis), written after the update's commit ------------------------------------

_DEFERRED: contextvars.ContextVar[DeferredWrites | None] = contextvars.ContextVar("prolita_fsm_deferred", default=None)


class DeferredWrites:
    """One update's FSM changes for a storage outside the database: read through, written after."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner
        # StorageKey -> [state, data, state changed, data changed]
        self.entries: dict[StorageKey, list[Any]] = {}

    async def entry(self, key: StorageKey) -> list[Any]:
        entry = self.entries.get(key)
        if entry is None:
            entry = [await self.inner.get_state(key), dict(await self.inner.get_data(key)), False, False]
            self.entries[key] = entry
        return entry

    @property
    def dirty(self) -> bool:
        return any(e[2] or e[3] for e in self.entries.values())

    async def flush(self) -> None:
        """Write the changes to the storage (after the update's database commit succeeded)."""
        for key, entry in self.entries.items():
            state, data, state_changed, data_changed = entry
            if data_changed:
                await self.inner.set_data(key, data)
                entry[3] = False
            if state_changed:
                await self.inner.set_state(key, state)
                entry[2] = False


@contextlib.contextmanager
def deferred_scope(storage: BaseStorage | None) -> Iterator[DeferredWrites | None]:
    """Hold a :class:`DeferredStorage`'s writes of the current update; the caller flushes them after
    the update's database commit (nothing is written if the update fails)."""
    if not isinstance(storage, DeferredStorage):
        yield None
        return
    writes = DeferredWrites(storage.inner)
    token = _DEFERRED.set(writes)
    try:
        yield writes
    finally:
        _DEFERRED.reset(token)


class DeferredStorage(BaseStorage):
    """FSM storage in Redis (or any aiogram storage) whose writes follow the database transaction.

    Inside an update (:func:`deferred_scope`) the dialog's new step is kept in memory and written
    to ``inner`` only after the update's database commit, so a database failure mid-update (the
    update is sent again by Telegram) leaves the dialog where it was: the retried update finds the
    same step, not the next one, like with :class:`SQLStorage`. Outside an update it is ``inner``.
    """

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:  # redis, key_builder... of the wrapped storage
        if name == "inner":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        if (writes := _DEFERRED.get()) is None:
            await self.inner.set_state(key, state)
            return
        entry = await writes.entry(key)
        entry[0], entry[2] = _state_str(state), True

    async def get_state(self, key: StorageKey) -> str | None:
        if (writes := _DEFERRED.get()) is None:
            return await self.inner.get_state(key)
        return (await writes.entry(key))[0]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        _check_dict(data)
        if (writes := _DEFERRED.get()) is None:
            await self.inner.set_data(key, data)
            return
        entry = await writes.entry(key)
        entry[1], entry[3] = _json_copy(data), True

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        if (writes := _DEFERRED.get()) is None:
            return await self.inner.get_data(key)
        return _json_copy((await writes.entry(key))[1])

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        _check_dict(data)
        if (writes := _DEFERRED.get()) is None:
            return await self.inner.update_data(key, data)
        entry = await writes.entry(key)
        entry[1] = {**entry[1], **_json_copy(data)}
        entry[3] = True
        return _json_copy(entry[1])

    async def close(self) -> None:
        await self.inner.close()
