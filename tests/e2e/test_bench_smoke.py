"""The benchmarks at a tiny size: each runs end to end and its correctness figures are zero (no lost
step or message, no duplicate, no error in the bot's log, every proposal stored once). Times are
printed by the benchmarks, never asserted here."""

from __future__ import annotations

import os

import aiohttp
import pytest
from redis.asyncio import Redis

from bench import datascale, fanout, flood, surge
from bench.common import StepClock, percentile, table
from fakeapi import FakeTelegram, make_jpeg
from tests.conftest import TEST_DATABASE_URL, _pg_unavailable_reason

pytestmark = pytest.mark.e2e


def test_percentile_and_table():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile([float(i) for i in range(1, 101)], 99) == 99
    assert percentile(list(range(1, 11)), 100) == 10
    assert str(percentile([], 50)) == "nan"
    assert table(["a", "bb"], [[1, 2]]).splitlines() == ["| a | bb |", "|---|----|", "| 1 | 2  |"]


async def test_step_clock_measures_in_the_server():
    """An album is one step; a second message of a step never answers the next one; an unanswered
    step stays unanswered (lost)."""
    async with FakeTelegram() as tg:
        bot = tg.make_bot()
        user = tg.user("Siti", bot=bot)
        clock = StepClock(tg)
        clock.start()
        clock.label(bot.id, user.id, "album")
        await user.send_album([make_jpeg(text="1"), make_jpeg(text="2")])
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{tg.base_url}/bot{bot.token}/sendMessage", json={"chat_id": user.id, "text": "2"}
            ) as r:
                assert r.status == 200
            async with http.post(
                f"{tg.base_url}/bot{bot.token}/sendMessage", json={"chat_id": user.id, "text": "+"}
            ) as r:
                assert r.status == 200  # a second message of the album step
            clock.label(bot.id, user.id, "text")
            await user.send("halo")
            await clock.stop()  # nothing answers "halo"
        [album, text] = clock.of(bot.id)
        assert (album.label, album.updates, text.label) == ("album", 2, "text")
        assert album.latency is not None and album.latency >= 0
        assert text.answered is None


async def test_surge_smoke(tmp_path):
    result = await surge.surge("sqlite", "saturation", 2, think=0.0, pg_url=None, echo=True, seed=1)
    assert (result.users_done, result.steps) == (2, 2 * surge.WIZARD_STEPS), result.failures
    assert (result.lost, result.errors, result.missing, result.duplicated) == (0, 0, 0, 0), result.error_lines
    assert result.proposals == 2
    assert result.album is not None and result.album.count == 2
    assert (result.echo_users_done, result.echo_lost) == (2, 0)
    assert result.echo is not None and result.echo.count == 2 * surge.WIZARD_STEPS
    text = surge.summary([result])
    assert "sqlite" in text and "thr/echo" in text


async def test_flood_smoke():
    """One flood window beside 2 walking users: one notice, every press answered, most of it dropped."""
    result = await flood.run("sqlite", "on", 2, cycles=1, quiet=1.0, think=0.5, pg_url=None, seed=1)
    assert (result.flood_sent, result.flood_notices, result.presses_answered, result.presses) == (200, 1, 50, 50)
    assert result.flood_handled < 50
    assert (sum(result.lost.values()), result.errors) == (0, 0), result.error_lines
    assert result.windows["flood"].count > 0
    assert "presses answered" in flood.summary([result])


async def test_surge_two_webhook_instances_smoke():
    """--instances 2: both instances behind the proxy get updates, and nothing is lost or doubled."""
    reason = await _pg_unavailable_reason()
    redis_url = os.environ.get("TEST_REDIS_URL", "").strip()
    if reason is None and not redis_url:
        reason = "two-instance surge skipped: TEST_REDIS_URL is not set (.ci/run sets it)"
    if reason is None:
        client = Redis.from_url(redis_url, socket_connect_timeout=2)
        try:
            await client.ping()
        except Exception as exc:
            reason = f"two-instance surge skipped: Redis at TEST_REDIS_URL not reachable ({exc!r})"
        finally:
            await client.aclose()
    if reason:
        pytest.skip(reason)
    result = await surge.surge("postgresql", "saturation", 2, think=0.0, pg_url=TEST_DATABASE_URL, echo=False,
                               seed=1, instances=2, redis_url=redis_url)  # fmt: skip
    assert (result.users_done, result.steps) == (2, 2 * surge.WIZARD_STEPS), result.failures
    assert (result.lost, result.errors, result.missing, result.duplicated) == (0, 0, 0, 0), result.error_lines
    assert result.proposals == 2 and result.webhook_failed == 0
    assert len(result.webhook_posts) == 2 and min(result.webhook_posts) > 0
    assert sum(result.webhook_posts) == 2 * (surge.WIZARD_STEPS + 2)  # an album is 3 updates
    assert len(result.bot_rss_each_mb) == 2 and result.bot_rss_mb == pytest.approx(sum(result.bot_rss_each_mb))
    assert "postgresql×2 webhook" in surge.summary([result])
    with pytest.raises(SystemExit):
        surge.parse_args(["--instances", "2"])  # SQLite is one process's
    with pytest.raises(ValueError, match="PostgreSQL"):
        await surge.surge("sqlite", "saturation", 1, think=0.0, pg_url=None, echo=False, seed=1, instances=2)


async def test_fanout_smoke():
    result = await fanout.fanout("sqlite", 40, scale=10, send_rate=None, send_concurrency=20, pg_url=None)
    assert result.reminders_made == 40
    assert (result.delivered, result.lost, result.duplicated, result.bot_errors) == (40, 0, 0, 0), result.error_lines
    assert result.outbox == {"sent": 40}
    assert result.minimum == pytest.approx(40 / 300)
    assert "ratio" in fanout.summary([result])


async def test_datascale_smoke():
    result = await datascale.run("sqlite", 1000, 5000, 100, None)
    g, m = result.generated, result.measured
    assert (g.proposals, g.rab_lines, g.reports, g.photos) == (1000, 3000, 5000, 10_000)
    assert m.lookups is not None and m.lookups.count == 100 and m.lookups_found == 100
    assert m.digests is not None and m.digests.count == 19  # 15 kelurahan, 3 kecamatan, 1 city officers
    assert m.export_rows == 100 and m.export_rab_lines == 300 and m.export_mb > 0
    assert m.reuse_checks is not None and m.reuse_checks.count == 20 and m.reuse_hashes == 10_000
    assert 0 <= m.reuse_read < 1000  # through the band indexes (~1 %), not all 10,000
    assert m.peak_rss_mb > 0
    assert "peak RSS MB" in datascale.summary([result])
