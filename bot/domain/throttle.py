"""Pure rules of per-user flood control: a token bucket per user, albums counted as one action,
and one notice per flood episode. No aiogram, no SQL, no Redis; the clock is passed in, so tests
drive time by hand. ``bot/middlewares/throttle.py`` applies it to updates (in this process, or in
Redis with the same rules in Lua).

A user starts with ``burst`` tokens; every update costs one and ``rate`` tokens come back each
second, up to ``burst``. An update that finds no token is dropped. The first drop of an *episode*
asks for the one polite notice; the episode ends once the bucket is full again (the user slowed
down long enough for the whole burst to come back), so a flood of 200 updates gets one notice and
a user who floods again later gets one more.

An album arrives as up to ten updates sharing a ``media_group_id`` in the same second: the first
item pays one token and decides for the whole album (the others follow it for free, at most
``ALBUM_MAX - 1`` of them), so an album is never cut in the middle: all of it is handled, or none.

The same update id seen again (a delivery retried after a database outage) gets the same answer
without paying twice.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

ALBUM_MAX = 10  # Telegram's limit of items in one album (media group)
_EPS = 1e-9


class Verdict(enum.IntEnum):
    ALLOW = 0
    DROP = 1  # dropped quietly: the user was told already in this episode
    DROP_NOTIFY = 2  # dropped, and the first drop of the episode: tell the user once

    @property
    def allowed(self) -> bool:
        return self is Verdict.ALLOW


@dataclass(frozen=True, slots=True)
class Limits:
    rate: float  # tokens back per second (sustained updates per second)
    burst: int  # bucket size (updates in a row at any speed)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill: after that a user's state equals a fresh one."""
        return self.burst / self.rate

    @property
    def ttl_ms(self) -> int:
        """How long a stored state must be kept (Redis key expiry): until it is full again, plus 1 s."""
        return math.ceil(self.refill_seconds * 1000) + 1000


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated: float  # clock reading of the last decision
    noticed: bool = False  # the notice of the current flood episode was asked for
    group: str | None = None  # media_group_id of the latest album
    group_left: int = 0  # album items that may still follow its first one's verdict
    group_allowed: bool = False
    last_update: int | None = None
    last_allowed: bool = False

    @classmethod
    def full(cls, limits: Limits, now: float) -> Bucket:
        return cls(tokens=float(limits.burst), updated=now)


def take(
    bucket: Bucket | None, limits: Limits, now: float, update_id: int, media_group: str | None = None
) -> tuple[Bucket, Verdict]:
    """Decide one update of one user: the user's new bucket and the verdict."""
    if bucket is None:
        bucket = Bucket.full(limits, now)
    if update_id == bucket.last_update:  # the same delivery again: the same answer, paid once
        return bucket, Verdict.ALLOW if bucket.last_allowed else Verdict.DROP
    elapsed = max(0.0, now - bucket.updated)  # another instance's clock may be a little behind
    tokens = min(float(limits.burst), bucket.tokens + elapsed * limits.rate)
    noticed = bucket.noticed and tokens < limits.burst - _EPS  # full again: the episode is over
    updated = max(bucket.updated, now)

    if media_group is not None and media_group == bucket.group and bucket.group_left > 0:
        allowed = bucket.group_allowed  # the rest of an album follows its first item
        verdict = Verdict.ALLOW if allowed else Verdict.DROP
        new = replace(bucket, tokens=tokens, updated=updated, noticed=noticed, group_left=bucket.group_left - 1,
                      last_update=update_id, last_allowed=allowed)  # fmt: skip
        return new, verdict

    if tokens >= 1 - _EPS:
        tokens = max(0.0, tokens - 1)
        verdict = Verdict.ALLOW
    elif noticed:
        verdict = Verdict.DROP
    else:
        verdict = Verdict.DROP_NOTIFY
        noticed = True
    allowed = verdict is Verdict.ALLOW
    group, group_left, group_allowed = bucket.group, bucket.group_left, bucket.group_allowed
    if media_group is not None:
        group, group_left, group_allowed = media_group, ALBUM_MAX - 1, allowed
    new = Bucket(tokens=tokens, updated=updated, noticed=noticed, group=group, group_left=group_left,
                 group_allowed=group_allowed, last_update=update_id, last_allowed=allowed)  # fmt: skip
    return new, verdict


def expired(bucket: Bucket, limits: Limits, now: float) -> bool:
    """True once the bucket is full again and nothing of it matters any more (it can be forgotten)."""
    return now - bucket.updated > limits.refill_seconds + 1.0
