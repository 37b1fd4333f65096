import asyncio

from bot.debounce import Debouncer


async def test_one_call_after_the_last_touch_per_key():
    calls: list[tuple[str, int]] = []
    d = Debouncer(delay=0.05)

    def make(key, n):
        async def cb():
            calls.append((key, n))
        return cb

    for n in range(5):
        d.touch("album-1", make("album-1", n))
        d.touch("album-2", make("album-2", n))
        await asyncio.sleep(0.01)
    assert calls == []
    await asyncio.sleep(0.1)
    assert sorted(calls) == [("album-1", 4), ("album-2", 4)]


async def test_touch_after_firing_schedules_again_and_flush_waits():
    calls = []
    d = Debouncer(delay=0.02)

    async def cb():
        await asyncio.sleep(0.02)
        calls.append(1)

    d.touch("k", cb)
    await asyncio.sleep(0.03)  # fired, callback running
    d.touch("k", cb)
    await d.flush()
    assert calls == [1, 1] and d.pending() == 0


async def test_failing_callback_is_logged_not_raised(caplog):
    d = Debouncer(delay=0.01)

    async def boom():
        raise RuntimeError("x")

    d.touch("k", boom)
    await d.flush()
    assert "debounced callback" in caplog.text


async def test_two_instances_sharing_redis_answer_an_album_once():
    """An album's photos handled by two instances (REDIS_URL): only the instance that handled the
    last photo answers; the other stays silent. Without Redis each would answer."""
    import random

    import pytest

    from tests.unit.test_redis_storage import TEST_REDIS_URL, _redis_reason

    reason = await _redis_reason()
    if reason:
        pytest.skip(reason)
    from redis.asyncio import Redis

    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        calls: list[tuple[str, int]] = []
        a, b = Debouncer(delay=0.15, redis=redis), Debouncer(delay=0.15, redis=redis)

        def make(name, n):
            async def cb():
                calls.append((name, n))
            return cb

        album = (random.randrange(10**9), "album-7")
        # Photos 1 and 3 to instance a, 2 and 4 to instance b, one user's updates one at a time.
        for n, instance in enumerate((a, b, a, b), 1):
            instance.touch(album, make("a" if instance is a else "b", n))
            await asyncio.sleep(0.03)
        await asyncio.gather(a.flush(), b.flush())
        assert calls == [("b", 4)]

        # The last photo on a: a answers, b (which had the third) does not.
        calls.clear()
        other = (album[0], "album-8")
        for n, instance in enumerate((b, b, a), 1):
            instance.touch(other, make("a" if instance is a else "b", n))
            await asyncio.sleep(0.03)
        await asyncio.gather(a.flush(), b.flush())
        assert calls == [("a", 3)]
    finally:
        await redis.aclose()


async def test_unreachable_redis_means_answering_from_this_instance(caplog):
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    calls = []

    async def cb():
        calls.append(1)

    try:
        d = Debouncer(delay=0.01, redis=redis)
        d.touch(("chat", "album"), cb)
        await d.flush()
    finally:
        await redis.aclose()
    assert calls == [1] and "answering from this instance" in caplog.text
