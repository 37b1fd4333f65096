"""Per-user flood control of incoming updates: the token bucket (bot/domain/throttle.py) with a
clock driven by hand, in this process and in Redis (the same cases against the Lua script), the
middleware's effect on a dispatcher, and the settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram import Dispatcher, Router
from aiogram.types import Update

from bot.config import ConfigError, load_settings
from bot.domain.throttle import ALBUM_MAX, Bucket, Limits, Verdict, expired, take
from bot.i18n import build_i18n
from bot.middlewares.throttle import (
    BUTTON_NOTICE,
    NOTICE,
    LocalThrottle,
    RedisThrottle,
    ThrottleMiddleware,
    build_limiter,
)

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip()
LIMITS = Limits(rate=1.0, burst=10)
A, N, D = Verdict.ALLOW, Verdict.DROP_NOTIFY, Verdict.DROP


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ----------------------------------------------------------------------------- the pure rule


def run(limits: Limits, events: list[tuple[float, int, str | None]]) -> list[Verdict]:
    """(time, update id, media group) in order -> verdicts, one bucket."""
    bucket: Bucket | None = None
    out = []
    for now, uid, group in events:
        bucket, verdict = take(bucket, limits, now, uid, group)
        out.append(verdict)
    return out


CASES = [
    ("a burst passes", Limits(1, 3), [(0, 1, None), (0, 2, None), (0, 3, None)], [A, A, A]),
    ("beyond it: one notice, then quiet drops", Limits(1, 3), [(0, i, None) for i in range(1, 7)], [A, A, A, N, D, D]),
    (
        "a token comes back each 1/rate s",
        Limits(2, 2),
        [(0, 1, None), (0, 2, None), (0.2, 3, None), (0.5, 4, None), (0.6, 5, None)],
        [A, A, N, A, D],
    ),
    (
        "no notice again while the bucket is not full",
        Limits(1, 2),
        [(0, 1, None), (0, 2, None), (0, 3, None), (1.0, 4, None), (1.1, 5, None)],
        [A, A, N, A, D],
    ),
    (
        "full again: the episode is over, a new flood is told again",
        Limits(1, 2),
        [(0, 1, None), (0, 2, None), (0, 3, None), (2.0, 4, None), (2.0, 5, None), (2.0, 6, None)],
        [A, A, N, A, A, N],
    ),
    (
        "the same update id again: the same answer, not paid twice",
        Limits(1, 2),
        [(0, 1, None), (0, 1, None), (0, 1, None), (0, 2, None), (0, 3, None), (0, 3, None)],
        [A, A, A, A, N, D],
    ),
    ("a clock a little behind adds nothing", Limits(1, 2), [(5, 1, None), (5, 2, None), (4, 3, None)], [A, A, N]),
    (
        "an album with one token left: all of it passes",
        Limits(1, 3),
        [(0, 1, None), (0, 2, None), *[(0.01 * i, 10 + i, "g1") for i in range(10)]],
        [A, A, *[A] * 10],
    ),
    (
        "an album with no token: none of it, one notice",
        Limits(1, 2),
        [(0, 1, None), (0, 2, None), *[(0.01 * i, 10 + i, "g1") for i in range(10)]],
        [A, A, N, *[D] * 9],
    ),
    (
        "an eleventh item of one group is not free",
        Limits(1, 1),
        [(0.001 * i, i, "g1") for i in range(11)],
        [*[A] * 10, N],
    ),
    (
        "two albums in a row pay one token each",
        Limits(0.1, 2),
        [*[(0, i, "g1") for i in range(3)], *[(0, 10 + i, "g2") for i in range(3)], (0, 20, "g3")],
        [A, A, A, A, A, A, N],
    ),
    (
        "a text between album items does not break the album",
        Limits(0.1, 2),
        [(0, 1, "g1"), (0, 2, None), (0, 3, "g1"), (0, 4, None)],
        [A, A, A, N],
    ),
]


@pytest.mark.parametrize(("name", "limits", "events", "expected"), CASES)
def test_take(name, limits, events, expected):
    assert run(limits, events) == expected, name


def test_two_hundred_updates_in_ten_seconds_get_one_notice():
    verdicts = run(LIMITS, [(i * 0.05, i, None) for i in range(200)])
    assert verdicts.count(N) == 1
    allowed = verdicts.count(A)
    assert 10 + 9 <= allowed <= 10 + 10  # the burst, then one a second
    assert verdicts[:10] == [A] * 10 and verdicts[10] == N


def test_a_full_bucket_can_be_forgotten():
    bucket, _ = take(None, LIMITS, 0.0, 1)
    assert not expired(bucket, LIMITS, 10.0)
    assert expired(bucket, LIMITS, LIMITS.refill_seconds + 1.5)
    assert LIMITS.ttl_ms == 11_000


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError):
        Limits(rate=0, burst=10)
    with pytest.raises(ValueError):
        Limits(rate=1, burst=0)


# ------------------------------------------------------------- the limiters (local and Redis)


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


@pytest.fixture
async def redis_client() -> AsyncIterator[object]:
    reason = await _redis_reason()
    if reason:
        pytest.skip(reason)
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def make_limiter(request):
    """``make_limiter(limits, clock)``: a limiter of that kind; Redis ones share one fresh key prefix."""
    if request.param == "local":
        yield lambda limits, clock: LocalThrottle(limits, clock)
        return
    reason = await _redis_reason()
    if reason:
        pytest.skip(reason)
    from redis.asyncio import Redis

    client = Redis.from_url(TEST_REDIS_URL)
    prefix = f"prolita-test:{uuid.uuid4().hex[:8]}:"
    try:
        yield lambda limits, clock: RedisThrottle(client, limits, clock, prefix=prefix)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _verdicts(limiter, clock: Clock, events: list[tuple[float, int, str | None]], user: int = 7):
    out = []
    start = clock.now
    for at, uid, group in events:
        clock.now = start + at
        out.append(await limiter.take(user, uid, group))
    return out


@pytest.mark.parametrize(("name", "limits", "events", "expected"), CASES)
async def test_limiter_follows_the_rule(make_limiter, name, limits, events, expected):
    """The same table through LocalThrottle and through the Lua script in Redis."""
    clock = Clock()
    limiter = make_limiter(limits, clock)
    assert await _verdicts(limiter, clock, events) == expected, name
    assert await _verdicts(limiter, clock, events[:1], user=8) == [A]  # another user has a bucket of their own


async def test_flood_of_200_with_a_ten_photo_album_in_it(make_limiter):
    """200 updates in 10 s: one notice; an album sent in the middle of one's own flood is all-or-nothing."""
    clock = Clock()
    limiter = make_limiter(LIMITS, clock)
    verdicts = await _verdicts(limiter, clock, [(i * 0.05, i, None) for i in range(200)])
    assert verdicts.count(N) == 1 and 19 <= verdicts.count(A) <= 20
    clock.advance(1.0)  # one token back: a whole 10-photo album passes on it
    album = await _verdicts(limiter, clock, [(0.02 * k, 1000 + k, "album-1") for k in range(10)])
    assert album == [A] * 10


async def test_a_ten_photo_album_after_a_few_messages_is_never_throttled(make_limiter):
    clock = Clock()
    limiter = make_limiter(LIMITS, clock)
    events = [(0.1 * i, i, None) for i in range(9)]  # 9 quick messages: one token left
    events += [(1.0 + 0.02 * k, 100 + k, "album") for k in range(ALBUM_MAX)]
    assert await _verdicts(limiter, clock, events) == [A] * (9 + ALBUM_MAX)


async def test_two_instances_share_one_bucket_in_redis(redis_client):
    clock = Clock()
    prefix = f"prolita-test:{uuid.uuid4().hex[:8]}:"
    one, two = (RedisThrottle(redis_client, Limits(1, 4), clock, prefix=prefix) for _ in range(2))
    verdicts = [await (one if i % 2 else two).take(5, i, None) for i in range(10)]
    assert verdicts == [A, A, A, A, N, D, D, D, D, D]  # one notice for both instances
    assert 0 < await redis_client.pttl(f"{prefix}5") <= Limits(1, 4).ttl_ms
    await redis_client.delete(f"{prefix}5")


async def test_redis_unreachable_falls_back_to_this_instances_counts(caplog):
    from redis.asyncio import Redis

    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    clock = Clock()
    limiter = RedisThrottle(client, Limits(1, 2), clock, fallback=LocalThrottle(Limits(1, 2), clock))
    try:
        assert [await limiter.take(3, i, None) for i in range(4)] == [A, A, N, D]
    finally:
        await client.aclose()
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1  # said once, not per update


def test_local_buckets_of_quiet_users_are_forgotten():
    clock = Clock()
    limiter = LocalThrottle(LIMITS, clock)
    for user in range(100):
        limiter.decide(user, 1)
    assert len(limiter) == 100
    clock.advance(LIMITS.refill_seconds + 2)
    limiter.decide(1000, 1)
    assert len(limiter) == 1


def test_throttle_rate_zero_turns_it_off():
    assert build_limiter(0, 10, None) is None
    assert isinstance(build_limiter(1.0, 10, None), LocalThrottle)


# ------------------------------------------------------------ the middleware on a dispatcher


def _update(uid: int, *, user: int = 42, group: str | None = None, callback: bool = False) -> Update:
    sender = {"id": user, "is_bot": False, "first_name": "Budi"}
    chat = {"id": user, "type": "private"}
    message = {"message_id": uid, "date": 0, "chat": chat, "from": sender, "text": f"pesan {uid}"}
    if group:
        message.update(media_group_id=group, photo=[{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}])
        del message["text"]
    if callback:
        return Update.model_validate({"update_id": uid, "callback_query": {
            "id": f"q{uid}", "from": sender, "chat_instance": "c", "data": "x", "message": message}})  # fmt: skip
    return Update.model_validate({"update_id": uid, "message": message})


class _RecordingBot:
    """The two calls a dropped update may make, recorded instead of sent."""

    id = 1

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.answered: list[tuple[str, str]] = []

    async def send_message(self, chat_id: int, text: str) -> None:
        self.sent.append((chat_id, text))

    async def answer_callback_query(self, query_id: str, text: str) -> None:
        self.answered.append((query_id, text))


async def test_dropped_updates_never_reach_a_handler_and_a_button_is_answered():
    i18n = build_i18n()
    clock = Clock()
    dp = Dispatcher(disable_fsm=True)
    dp.update.outer_middleware(ThrottleMiddleware(LocalThrottle(Limits(1, 3), clock), i18n))
    router = Router()
    handled: list[int] = []  # update ids that reached a handler (where the database work is)

    @router.message()
    async def on_message(message) -> None:
        handled.append(message.message_id)

    @router.callback_query()
    async def on_press(query) -> None:
        handled.append(query.message.message_id)

    dp.include_router(router)
    bot = _RecordingBot()
    updates = [_update(i, callback=i % 2 == 0) for i in range(1, 21)]
    for update in updates:
        await dp.feed_update(bot, update)  # type: ignore[arg-type]
    assert handled == [1, 2, 3]
    notice = i18n.gettext(NOTICE, locale="id")
    assert bot.sent == [(42, notice)] and notice.startswith("⏳ Tunggu sebentar ya")
    presses = [u for u in updates[3:] if u.callback_query is not None]
    assert bot.answered == [(u.callback_query.id, i18n.gettext(BUTTON_NOTICE, locale="id")) for u in presses]
    # Another user is not touched by the first one's flood.
    await dp.feed_update(bot, _update(100, user=43))  # type: ignore[arg-type]
    assert handled == [1, 2, 3, 100] and len(bot.sent) == 1


# ------------------------------------------------------------------------------- settings


def test_settings_defaults_and_bad_values(monkeypatch):
    for key in ("THROTTLE_RATE", "THROTTLE_BURST"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings()
    assert (s.throttle_rate, s.throttle_burst) == (1.0, 10)
    assert load_settings(throttle_rate=0).throttle_rate == 0  # off
    for var, value in (("THROTTLE_RATE", "-1"), ("THROTTLE_RATE", "0.01"), ("THROTTLE_BURST", "0")):
        monkeypatch.setenv(var, value)
        with pytest.raises(ConfigError) as err:
            load_settings()
        assert var in str(err.value)
        monkeypatch.delenv(var)
