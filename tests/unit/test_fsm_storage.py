"""SQLStorage against aiogram's storage contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select

from storage.db import create_engine, create_sessionmaker
from storage.fsm import SQLKeyBuilder, SQLStorage
from storage.models import FSMRecord

BOT_ID = 42


class Form(StatesGroup):
    name = State()
    phone = State()


@pytest.fixture
def storage(sessionmaker) -> SQLStorage:
    return SQLStorage(sessionmaker)


@pytest.fixture
def storage_key() -> StorageKey:
    # The same key aiogram's own storage tests use.
    return StorageKey(chat_id=-42, user_id=42, bot_id=BOT_ID)


async def _rows(sessionmaker) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(FSMRecord))


# --- aiogram's tests/test_fsm/storage/test_storages.py, ported ----------------------------------


async def test_set_state(storage: SQLStorage, storage_key: StorageKey):
    assert await storage.get_state(key=storage_key) is None

    await storage.set_state(key=storage_key, state="state")
    assert await storage.get_state(key=storage_key) == "state"
    await storage.set_state(key=storage_key, state=None)
    assert await storage.get_state(key=storage_key) is None


async def test_set_data(storage: SQLStorage, storage_key: StorageKey):
    assert await storage.get_data(key=storage_key) == {}
    assert await storage.get_value(storage_key=storage_key, dict_key="foo") is None
    assert await storage.get_value(storage_key=storage_key, dict_key="foo", default="baz") == "baz"

    await storage.set_data(key=storage_key, data={"foo": "bar"})
    assert await storage.get_data(key=storage_key) == {"foo": "bar"}
    assert await storage.get_value(storage_key=storage_key, dict_key="foo") == "bar"
    assert await storage.get_value(storage_key=storage_key, dict_key="foo", default="baz") == "bar"

    await storage.set_data(key=storage_key, data={})
    assert await storage.get_data(key=storage_key) == {}
    assert await storage.get_value(storage_key=storage_key, dict_key="foo") is None
    assert await storage.get_value(storage_key=storage_key, dict_key="foo", default="baz") == "baz"

    class CustomTypedDict(TypedDict, total=False):
        foo: str
        bar: str

    await storage.set_data(key=storage_key, data=CustomTypedDict(foo="bar", bar="baz"))
    assert await storage.get_data(key=storage_key) == {"foo": "bar", "bar": "baz"}
    assert await storage.get_value(storage_key=storage_key, dict_key="foo") == "bar"
    assert await storage.get_value(storage_key=storage_key, dict_key="foo", default="baz") == "bar"

    with pytest.raises(DataNotDictLikeError):
        await storage.set_data(key=storage_key, data=())


async def test_update_data(storage: SQLStorage, storage_key: StorageKey):
    assert await storage.get_data(key=storage_key) == {}
    assert await storage.update_data(key=storage_key, data={"foo": "bar"}) == {"foo": "bar"}
    assert await storage.update_data(key=storage_key, data={}) == {"foo": "bar"}
    assert await storage.get_data(key=storage_key) == {"foo": "bar"}
    assert await storage.update_data(key=storage_key, data={"baz": "spam"}) == {"foo": "bar", "baz": "spam"}
    assert await storage.get_data(key=storage_key) == {"foo": "bar", "baz": "spam"}
    assert await storage.update_data(key=storage_key, data={"baz": "test"}) == {"foo": "bar", "baz": "test"}
    assert await storage.get_data(key=storage_key) == {"foo": "bar", "baz": "test"}


async def test_close_is_a_noop(storage: SQLStorage, storage_key: StorageKey):
    await storage.set_state(storage_key, "x")
    await storage.close()
    assert await storage.get_state(storage_key) == "x"


# --- data isolation: callers get copies ---------------------------------------------------------


async def test_returned_data_is_a_copy(storage: SQLStorage, storage_key: StorageKey):
    await storage.set_data(storage_key, {"items": [1, 2], "nested": {"a": 1}})

    got = await storage.get_data(storage_key)
    got["items"].append(3)
    got["nested"]["a"] = 99
    got["new"] = True
    assert await storage.get_data(storage_key) == {"items": [1, 2], "nested": {"a": 1}}

    updated = await storage.update_data(storage_key, {"x": 1})
    updated["items"].clear()
    assert await storage.get_data(storage_key) == {"items": [1, 2], "nested": {"a": 1}, "x": 1}

    value = await storage.get_value(storage_key, "items")
    value.append(4)
    assert await storage.get_value(storage_key, "items") == [1, 2]


async def test_input_data_is_copied(storage: SQLStorage, storage_key: StorageKey):
    source = {"items": [1]}
    await storage.set_data(storage_key, source)
    source["items"].append(2)
    source["late"] = 1
    assert await storage.get_data(storage_key) == {"items": [1]}


async def test_non_json_data_is_rejected(storage: SQLStorage, storage_key: StorageKey):
    with pytest.raises(TypeError, match="JSON"):
        await storage.set_data(storage_key, {"obj": object()})
    with pytest.raises(TypeError, match="JSON"):
        await storage.update_data(storage_key, {"obj": {1, 2}})
    assert await storage.get_data(storage_key) == {}


# --- State objects, row cleanup ---------------------------------------------------------------------


async def test_state_object_and_string_are_equivalent(storage: SQLStorage, storage_key: StorageKey):
    await storage.set_state(storage_key, Form.name)
    assert await storage.get_state(storage_key) == Form.name.state == "Form:name"
    assert await storage.get_state(storage_key) == Form.name  # State.__eq__ accepts strings

    other = StorageKey(bot_id=BOT_ID, chat_id=1, user_id=1)
    await storage.set_state(other, "Form:name")
    assert await storage.get_state(other) == await storage.get_state(storage_key)

    await storage.set_state(storage_key, Form.phone)
    assert await storage.get_state(storage_key) == "Form:phone"


async def test_state_and_data_are_independent(storage: SQLStorage, storage_key: StorageKey, sessionmaker):
    await storage.set_state(storage_key, Form.name)
    await storage.set_data(storage_key, {"a": 1})
    await storage.set_state(storage_key, None)
    assert await storage.get_data(storage_key) == {"a": 1}
    await storage.set_state(storage_key, Form.phone)
    await storage.set_data(storage_key, {})
    assert await storage.get_state(storage_key) == "Form:phone"
    await storage.update_data(storage_key, {"b": 2})
    assert await storage.get_state(storage_key) == "Form:phone"
    assert await _rows(sessionmaker) == 1


async def test_empty_record_is_deleted(storage: SQLStorage, storage_key: StorageKey, sessionmaker):
    await storage.set_state(storage_key, Form.name)
    await storage.set_data(storage_key, {"a": 1})
    assert await _rows(sessionmaker) == 1
    await storage.set_state(storage_key, None)
    assert await _rows(sessionmaker) == 1  # data still there
    await storage.set_data(storage_key, {})
    assert await _rows(sessionmaker) == 0

    # Clearing what is not there writes nothing.
    await storage.set_state(storage_key, None)
    await storage.set_data(storage_key, {})
    assert await storage.update_data(storage_key, {}) == {}
    assert await _rows(sessionmaker) == 0

    await storage.set_data(storage_key, {"a": 1})
    await storage.set_state(storage_key, None)
    await storage.set_data(storage_key, {})
    assert await _rows(sessionmaker) == 0


# --- keys -------------------------------------------------------------------------------------------


async def test_keys_are_separated(storage: SQLStorage):
    base = StorageKey(bot_id=1, chat_id=10, user_id=100)
    variants = [
        base,
        StorageKey(bot_id=2, chat_id=10, user_id=100),
        StorageKey(bot_id=1, chat_id=11, user_id=100),
        StorageKey(bot_id=1, chat_id=10, user_id=101),
        StorageKey(bot_id=1, chat_id=10, user_id=100, thread_id=5),
        StorageKey(bot_id=1, chat_id=10, user_id=100, business_connection_id="biz"),
        StorageKey(bot_id=1, chat_id=10, user_id=100, destiny="other"),
        # Would collide in a builder that just leaves absent parts out:
        StorageKey(bot_id=1, chat_id=2, user_id=4, thread_id=3),
        StorageKey(bot_id=1, chat_id=3, user_id=4, business_connection_id="2"),
        StorageKey(bot_id=1, chat_id=10, user_id=100, destiny="a:b"),
        StorageKey(bot_id=1, chat_id=10, user_id=100, business_connection_id="a", destiny="b"),
    ]
    assert len({SQLKeyBuilder().build(k) for k in variants}) == len(variants)

    for i, key in enumerate(variants):
        await storage.set_state(key, f"S:{i}")
        await storage.set_data(key, {"i": i})
    for i, key in enumerate(variants):
        assert await storage.get_state(key) == f"S:{i}"
        assert await storage.get_data(key) == {"i": i}

    await storage.set_state(base, None)
    await storage.set_data(base, {})
    assert await storage.get_state(variants[1]) == "S:1"
    assert await storage.get_data(variants[6]) == {"i": 6}


async def test_overlong_key_is_hashed(storage: SQLStorage):
    key = StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="d" * 400)
    await storage.set_state(key, "long")
    assert await storage.get_state(key) == "long"
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=1, user_id=1, destiny="d" * 399)) is None


# --- durability and concurrency --------------------------------------------------------------------


async def test_state_survives_restart(engine, db_url: str, storage_key: StorageKey):
    first = SQLStorage(create_sessionmaker(engine))
    await first.set_state(storage_key, Form.phone)
    await first.set_data(storage_key, {"name": "Siti", "tags": ["a"]})
    await first.close()
    await engine.dispose()

    again = create_engine(db_url)
    try:
        second = SQLStorage(create_sessionmaker(again))
        assert await second.get_state(storage_key) == "Form:phone"
        assert await second.get_data(storage_key) == {"name": "Siti", "tags": ["a"]}
        assert await second.update_data(storage_key, {"age": 30}) == {
            "name": "Siti",
            "tags": ["a"],
            "age": 30,
        }
    finally:
        await again.dispose()


async def test_concurrent_update_data_loses_nothing(storage: SQLStorage, storage_key: StorageKey):
    await asyncio.gather(*(storage.update_data(storage_key, {f"k{i}": i}) for i in range(20)))
    assert await storage.get_data(storage_key) == {f"k{i}": i for i in range(20)}


async def test_concurrent_update_data_on_existing_row(storage: SQLStorage, storage_key: StorageKey):
    await storage.set_state(storage_key, Form.name)
    await storage.set_data(storage_key, {"base": True})
    await asyncio.gather(
        *(storage.update_data(storage_key, {f"k{i}": i}) for i in range(20)),
        storage.set_state(storage_key, Form.phone),
    )
    assert await storage.get_data(storage_key) == {"base": True, **{f"k{i}": i for i in range(20)}}
    assert await storage.get_state(storage_key) == "Form:phone"
