"""DeferredStorage (REDIS_URL): inside an update the dialog's new step is read back by the update
itself but reaches the real storage only when the update's database commit succeeded; a failed
update leaves the dialog where it was, so Telegram's retry finds the same step."""

from __future__ import annotations

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage

from storage.fsm import DeferredStorage, deferred_scope

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


async def test_writes_wait_for_the_flush_and_read_back_inside_the_update():
    inner = MemoryStorage()
    await inner.set_state(KEY, "Usulan:judul")
    await inner.set_data(KEY, {"proposal_id": 7})
    storage = DeferredStorage(inner)
    with deferred_scope(storage) as later:
        await storage.set_state(KEY, "Usulan:deskripsi")
        merged = await storage.update_data(KEY, {"title": "Semenisasi gang"})
        assert merged == {"proposal_id": 7, "title": "Semenisasi gang"}
        assert await storage.get_state(KEY) == "Usulan:deskripsi"  # the update sees its own step
        assert await storage.get_data(KEY) == merged
        assert await inner.get_state(KEY) == "Usulan:judul"  # nobody else does yet
        assert await inner.get_data(KEY) == {"proposal_id": 7}
        assert later is not None and later.dirty
        await later.flush()  # what the middleware does after the commit
    assert await inner.get_state(KEY) == "Usulan:deskripsi"
    assert await inner.get_data(KEY) == {"proposal_id": 7, "title": "Semenisasi gang"}


async def test_a_failed_update_writes_nothing():
    inner = MemoryStorage()
    await inner.set_state(KEY, "Usulan:judul")
    storage = DeferredStorage(inner)
    try:
        with deferred_scope(storage):
            await storage.set_state(KEY, "Usulan:deskripsi")
            await storage.set_data(KEY, {"title": "x"})
            raise ConnectionError("the database went away before the commit")
    except ConnectionError:
        pass
    assert await inner.get_state(KEY) == "Usulan:judul"
    assert await inner.get_data(KEY) == {}


async def test_outside_an_update_it_is_the_wrapped_storage():
    inner = MemoryStorage()
    storage = DeferredStorage(inner)
    await storage.set_state(KEY, "Laporan:persen")
    await storage.update_data(KEY, {"percent": 50})
    assert await inner.get_state(KEY) == "Laporan:persen"
    assert await inner.get_data(KEY) == {"percent": 50}
    assert storage.storage is inner.storage  # attributes of the wrapped storage (RedisStorage.redis...)
    with deferred_scope(inner) as later:  # a plain storage: nothing to defer
        assert later is None
