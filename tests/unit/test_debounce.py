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
