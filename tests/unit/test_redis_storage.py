"""REDIS_URL switches the FSM storage and event isolation to aiogram's Redis implementations."""

from __future__ import annotations

import os
import random

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

from bot.app import build_storage
from bot.config import load_settings
from storage.fsm import DeferredStorage, SQLStorage

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip()


async def _redis_reason() -> str | None:
    if not TEST_REDIS_URL:
        return "Redis tests skipped: TEST_REDIS_URL is not set (.ci/run sets it)"
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return f"Redis tests skipped: server at TEST_REDIS_URL not reachable ({exc!r})"
    finally:
        await client.aclose()
    return None


def test_without_redis_url_the_database_storage_is_used():
    storage, _ = build_storage(load_settings(redis_url=None), sessionmaker=None)
    assert isinstance(storage, SQLStorage)


async def test_redis_url_switches_to_redis_storage():
    reason = await _redis_reason()
    if reason:
        pytest.skip(reason)
    storage, isolation = build_storage(load_settings(redis_url=TEST_REDIS_URL), sessionmaker=None)
    # Redis behind DeferredStorage: inside an update a step is written after the commit (storage/fsm.py)
    assert isinstance(storage, DeferredStorage) and isinstance(storage.inner, RedisStorage)
    assert isinstance(isolation, RedisEventIsolation) and storage.redis is storage.inner.redis
    key = StorageKey(bot_id=random.randint(10**9, 2 * 10**9), chat_id=1, user_id=1)
    try:
        await storage.set_state(key, "Reg:name")
        await storage.update_data(key, {"full_name": "Budi"})
        assert await storage.get_state(key) == "Reg:name"
        assert await storage.get_data(key) == {"full_name": "Budi"}
        async with isolation.lock(key):
            pass
    finally:
        await storage.set_state(key, None)
        await storage.set_data(key, {})
        await storage.close()
        await isolation.close()
