"""Command line: ``prolita-bot`` (run the bot), ``prolita-bot db upgrade``,
``prolita-bot import-wilayah FILE.csv``, ``prolita-bot program show|set``, ``prolita-bot export``,
``prolita-bot sandbox``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings

NO_TOKEN = """\
prolita-bot: BOT_TOKEN is not set, so the bot cannot connect to Telegram.

  1. In Telegram, open @BotFather, send /newbot and follow the steps; it gives you a token
     like 123456789:AAE...
  2. Put it in the environment or in a .env file next to where you run the bot:
       BOT_TOKEN=123456789:AAE...
     Optional: DATABASE_URL (default sqlite+aiosqlite:///./prolita.db), ADMIN_IDS (your
     Telegram user id, comma-separated for several), TELEGRAM_API_URL (a self-hosted Bot API
     server), MEDIA_DIR, TIMEZONE, REDIS_URL, LOG_LEVEL. See README.md.
  3. Run prolita-bot again.
"""


class _RedactToken(logging.Filter):
    """Belt and braces: the token never appears in a log line, even inside a URL."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg = message.replace(self.token, "<BOT_TOKEN>")
                record.args = None
        return True


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    token = settings.bot_token.get_secret_value() if settings.bot_token else ""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactToken(token))
    # aiogram logs every update at INFO; our own line per update replaces it.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prolita-bot", description="Prolita Bot: run the Telegram bot or manage it.")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot with long polling (the default)")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade", "current"], help="upgrade: apply migrations; current: show revision")
    prog = sub.add_parser("program", help="show or edit the programme of a fiscal year (name, ceiling, window)")
    prog.add_argument("action", choices=["show", "set"])
    prog.add_argument("--year", type=int, help="fiscal year (default: the current one)")
    prog.add_argument("--name", help="programme name, e.g. Prolita")
    prog.add_argument("--budget", help="ceiling per RT in rupiah, e.g. 50000000 or 50jt")
    prog.add_argument("--prefix", help="proposal code prefix, e.g. PRL")
    prog.add_argument("--opens", type=date.fromisoformat, help="first day proposals may be sent (YYYY-MM-DD)")
    prog.add_argument("--closes", type=date.fromisoformat, help="last day proposals may be sent (YYYY-MM-DD)")
    imp = sub.add_parser("import-wilayah", help="import kecamatan/kelurahan/RT master data from a CSV")
    imp.add_argument("file", type=Path, help="CSV with columns kecamatan,kelurahan,rt")
    exp = sub.add_parser("export", help="write the Excel recap (XLSX) of a fiscal year, city-wide or for one area")
    exp.add_argument("--year", type=int, help="fiscal year (default: the current one)")
    exp.add_argument("--out", type=Path, required=True, help="the .xlsx file to write, e.g. recap.xlsx")
    where = exp.add_mutually_exclusive_group()
    where.add_argument("--kelurahan", help="only this kelurahan, e.g. Api-Api")
    where.add_argument("--kecamatan", help="only this kecamatan, e.g. 'Bontang Utara'")
    sandbox = sub.add_parser(
        "sandbox", help="run the bot offline with a fake Telegram and a web chat (demo data; no BOT_TOKEN needed)"
    )
    sandbox.add_argument("--port", type=int, default=8080, help="port of the web page (default: 8080)")
    sandbox.add_argument("--fresh", action="store_true", help="delete the sandbox's data and seed it again")
    sandbox.add_argument("--dir", default="./sandbox-data", help="folder of its data (default: ./sandbox-data)")
    return p


async def _db(settings: Settings, action: str) -> int:
    from storage.db import create_engine
    from storage.migrate import current_revision, upgrade

    engine = create_engine(settings.database_url)
    try:
        if action == "upgrade":
            await upgrade(engine)
        print(f"database at revision {await current_revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def _program(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain.money import MoneyError, format_rupiah, parse_rupiah
    from bot.domain.timefmt import format_date
    from bot.services import programs
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade

    year = args.year or settings.current_fiscal_year()
    changes: dict[str, object] = {}
    if args.action == "set":
        if args.name:
            changes["name"] = args.name.strip()
        if args.budget:
            try:
                changes["budget_per_rt"] = parse_rupiah(args.budget)
            except MoneyError:
                print(f"prolita-bot: --budget {args.budget!r} is not an amount; e.g. 50000000 or 50jt", file=sys.stderr)
                return 2
        if args.prefix:
            prefix = args.prefix.strip().upper()
            if not prefix.isalpha() or not 2 <= len(prefix) <= 6:
                print("prolita-bot: --prefix must be 2 to 6 letters, e.g. PRL", file=sys.stderr)
                return 2
            changes["code_prefix"] = prefix
        if args.opens:
            changes["submission_opens"] = args.opens
        if args.closes:
            changes["submission_closes"] = args.closes
        if not changes:
            print(
                "prolita-bot: nothing to change; give --name, --budget, --prefix, --opens or --closes", file=sys.stderr
            )
            return 2
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session:
            if changes:
                try:
                    program = await programs.update(session, settings, year, None, **changes)
                except ValueError as exc:
                    print(f"prolita-bot: {exc}", file=sys.stderr)
                    return 2
            else:
                program = await programs.ensure(session, settings, year)
            print(f"{program.name} {program.fiscal_year}")
            print(f"  ceiling per RT : {format_rupiah(program.budget_per_rt)}")
            print(f"  code prefix    : {program.code_prefix}")
            print(
                f"  submissions    : {format_date(program.submission_opens)} – {format_date(program.submission_closes)}"
            )
            print("  categories     :")
            for c in program.categories:
                share = ""
                if c.min_share_pct is not None or c.max_share_pct is not None:
                    share = f" (share {c.min_share_pct or 0}–{c.max_share_pct or 100} %)"
                print(f"    {c.code:<14} {c.name}{' [location required]' if c.is_physical else ''}{share}")
    finally:
        await engine.dispose()
    return 0


async def _import(settings: Settings, path: Path) -> int:
    from bot.services.wilayah import import_csv
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)

        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows", end="", file=sys.stderr)
            if done >= total:
                print(file=sys.stderr)

        report = await import_csv(create_sessionmaker(engine), path, on_progress=progress)
    finally:
        await engine.dispose()
    if report.errors:
        print(f"{len(report.errors)} bad row(s); nothing was imported:", file=sys.stderr)
        for line, message in report.errors:
            print(f"  line {line}: {message}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain.money import format_rupiah
    from bot.services import export
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade

    year = args.year or settings.current_fiscal_year()
    out: Path = args.out
    partial = out.with_name(out.name + ".part")
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session:
            try:
                scope = await export.scope_for_place(session, kelurahan=args.kelurahan, kecamatan=args.kecamatan)
            except export.PlaceNotFound as exc:
                why = "is in more than one kecamatan" if exc.ambiguous else "is not known"
                print(f"prolita-bot: {exc.kind} {exc.name!r} {why}; known: {', '.join(exc.known)}", file=sys.stderr)
                return 2

            def progress(done: int, total: int) -> None:
                width = 30
                filled = width * done // max(total, 1)
                print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} proposals", end="", file=sys.stderr)
                if done >= total:
                    print(file=sys.stderr)

            try:
                summary = await export.export(session, scope, year, partial, tz=settings.timezone, on_progress=progress)
                partial.replace(out)  # a finished file only: never a half-written one under the final name
            except export.NoProgram:
                print(
                    f"prolita-bot: there is no programme for the fiscal year {year}; nothing to export", file=sys.stderr
                )
                return 1
            except OSError as exc:
                print(f"\nprolita-bot: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
                return 1
            await export.record(session, None, summary, via="cli")
    finally:
        partial.unlink(missing_ok=True)
        await engine.dispose()
    t = summary.total
    print(f"{summary.meta.program_name} {year}, {summary.meta.scope_label}: wrote {out}")
    print(f"  proposals : {t.listed} listed, {t.counted} counted (rejected/withdrawn not counted)")
    print(f"  RTs       : {t.rts_with_proposals} of {t.rts} with proposals")
    print(f"  ceiling   : {format_rupiah(t.ceiling)}")
    print(f"  proposed  : {format_rupiah(t.proposed)}")
    print(f"  approved  : {format_rupiah(t.approved)}")
    print(f"  realised  : {format_rupiah(t.realised)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sandbox":  # self-contained: its own token, database and settings
        from bot.sandbox import main as sandbox

        return sandbox(args)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"prolita-bot: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    if args.command == "db":
        return asyncio.run(_db(settings, args.action))
    if args.command == "program":
        return asyncio.run(_program(settings, args))
    if args.command == "import-wilayah":
        if not args.file.is_file():
            print(f"prolita-bot: {args.file}: no such file", file=sys.stderr)
            return 2
        return asyncio.run(_import(settings, args.file))
    if args.command == "export":
        if args.year is not None and not 2000 <= args.year <= 2100:
            print(f"prolita-bot: --year {args.year}: give a fiscal year such as 2026", file=sys.stderr)
            return 2
        if args.out.suffix.lower() != ".xlsx":
            print(f"prolita-bot: --out {args.out}: give a file name ending in .xlsx", file=sys.stderr)
            return 2
        if not args.out.parent.is_dir():
            print(f"prolita-bot: --out {args.out}: folder {args.out.parent} does not exist", file=sys.stderr)
            return 2
        return asyncio.run(_export(settings, args))
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        print(NO_TOKEN, file=sys.stderr, end="")
        return 2
    from bot.app import TokenRejected, run_bot

    try:
        asyncio.run(run_bot(settings))
    except KeyboardInterrupt:
        pass
    except TokenRejected:
        print(
            "prolita-bot: the Bot API refused BOT_TOKEN (401 Unauthorized). Copy the token again from "
            "@BotFather (/mybots → your bot → API Token) and check TELEGRAM_API_URL if you set it.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
