"""Command line: ``prolita-bot`` (run the bot), ``prolita-bot db upgrade|current|backup|copy``,
``prolita-bot import-wilayah FILE.csv``, ``prolita-bot program show|set``, ``prolita-bot export``,
``prolita-bot sandbox``."""

from __future__ import annotations

import argparse
import asyncio
import json
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
    if settings.log_format == "json":
        from bot.logs import use_json

        use_json()
    # aiogram logs every update at INFO; our own line per update replaces it.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prolita-bot", description="Prolita Bot: run the Telegram bot or manage it.")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the bot: long polling (the default), or a webhook when WEBHOOK_URL is set")
    run.add_argument("--webhook", action="store_true", help="require webhook mode (WEBHOOK_URL must be set)")
    _db_parser(sub.add_parser("db", help="database maintenance: upgrade, current, backup, copy"))
    prog = sub.add_parser("program", help="show or edit the programme of a fiscal year (name, ceiling, window)")
    prog.add_argument("action", choices=["show", "set"])
    prog.add_argument("--year", type=int, help="fiscal year (default: the current one)")
    prog.add_argument("--name", help="programme name, e.g. Prolita")
    prog.add_argument("--budget", help="ceiling per RT in rupiah, e.g. 50000000 or 50jt")
    prog.add_argument("--prefix", help="proposal code prefix, e.g. PRL")
    prog.add_argument("--opens", type=date.fromisoformat, help="first day proposals may be sent (YYYY-MM-DD)")
    prog.add_argument("--closes", type=date.fromisoformat, help="last day proposals may be sent (YYYY-MM-DD)")
    prog.add_argument(
        "--reminders",
        type=Path,
        metavar="FILE.json",
        help="the year's reminder and escalation settings (JSON; see README, Reminders); an empty object resets",
    )
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


def _db_parser(db: argparse.ArgumentParser) -> None:
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("upgrade", help="apply the migrations this version has")
    actions.add_parser("current", help="show the database's migration and whether it matches this version")
    backup = actions.add_parser(
        "backup",
        help="SQLite: consistent copy while the bot runs; PostgreSQL: pg_dump commands (or --run)",
        description="SQLite: write a consistent copy of the live database to PATH (safe while the bot runs), "
        "check it with PRAGMA integrity_check and print its row counts. PostgreSQL: print the pg_dump and "
        "pg_restore commands for DATABASE_URL, or run pg_dump with --run.",
    )
    backup.add_argument("path", type=Path, help="file to write, or an existing folder (a time-stamped name is used)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup.add_argument(
        "--with-media", action="store_true", help="also copy the media files the backup refers to into PATH-media/"
    )
    backup.add_argument("--run", action="store_true", help="PostgreSQL: run pg_dump (custom format), not just print it")
    copy = actions.add_parser(
        "copy",
        help="copy every row into a new PostgreSQL database (e.g. from SQLite)",
        description="Copy every row from the configured database (or --from) into an empty PostgreSQL database, "
        "in one transaction, then compare the row counts table by table.",
    )
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql+asyncpg://user@host:5432/dbname")
    copy.add_argument("--from", dest="source", metavar="URL", help="source database (default: DATABASE_URL)")
    copy.add_argument("--batch", type=int, default=2000, help="rows per insert batch (default: 2000)")


def _progress_bar(unit: str):
    """A ``(done, total)`` callback drawing a text progress bar on stderr (as export and import do)."""

    def progress(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)

    return progress


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _print_media(report, media_dir: Path, dest: Path | None) -> None:
    root = media_dir.resolve()
    print(f"media: {report.referenced} files referenced ({_megabytes(report.size)}), kept in MEDIA_DIR {root}")
    if report.dest is not None:
        print(f"  copied {report.copied}, {report.already} already there, into {report.dest}")
        print(f"  to restore: copy that folder's contents into MEDIA_DIR (e.g. rsync -a {report.dest}/ {root}/)")
    elif report.referenced:
        sibling = dest if dest is not None else Path("<backup folder>/media")
        print("  the files are not in the database: copy that folder alongside the backup, e.g.")
        print(f"    rsync -a {root}/ {sibling}/")
        print("  (files never change once written, so repeated copies only add new ones), or use --with-media")
    if report.missing:
        print(f"  WARNING: {len(report.missing)} referenced files are missing from MEDIA_DIR, e.g. {report.missing[0]}")


async def _db_backup(settings: Settings, args: argparse.Namespace) -> int:
    from storage import backup
    from storage.db import is_sqlite

    url = settings.database_url
    try:
        if not is_sqlite(url):
            return await _db_backup_pg(settings, args)
        if args.run:
            print("prolita-bot: --run is for PostgreSQL; a SQLite backup needs no external tool", file=sys.stderr)
            return 2
        source = backup.sqlite_file(url)
        dest = backup.resolve_destination(args.path, source)
        report = await asyncio.to_thread(backup.backup_sqlite, source, dest, force=args.force)
        print(f"backup of {report.source} written to {report.path} ({_megabytes(report.size)}, {report.seconds:.1f} s)")
        print(f"  integrity_check : {report.integrity}")
        print(f"  migration       : {report.revision or '(none)'}")
        width = max((len(name) for name, _ in report.tables), default=5)
        for name, rows in report.tables:
            print(f"  {name:<{width}}  {rows:>9}")
        paths = await asyncio.to_thread(backup.referenced_media, report.path)
        media_dest = backup.media_dir_for(report.path)
        if args.with_media:
            media = await asyncio.to_thread(backup.copy_media, settings.media_dir, paths, media_dest)
        else:
            media = await asyncio.to_thread(backup.media_summary, settings.media_dir, paths)
        _print_media(media, settings.media_dir, media_dest)
        print(f"to restore: stop the bot, delete {source.name}-wal and {source.name}-shm if present, copy")
        print(f"  {report.path} to {source}, restore the media files, and start the bot")
    except backup.BackupError as exc:
        print(f"prolita-bot: {exc}", file=sys.stderr)
        return 1
    return 0


async def _db_backup_pg(settings: Settings, args: argparse.Namespace) -> int:
    import shlex

    from storage import backup

    url = settings.database_url
    dest = args.path / backup.default_name().replace(".db", ".dump") if args.path.is_dir() else args.path
    if not args.run:
        cmds = backup.pg_commands(url, dest)
        print("PostgreSQL: back up with pg_dump (prolita-bot db backup PATH --run runs it for you):")
        if cmds.has_password:
            print("  # the URL's password is not shown: export PGPASSWORD=... or put it in ~/.pgpass")
        for name, value in cmds.env.items():
            if name != "PGPASSWORD":
                print(f"  export {name}={shlex.quote(value)}")
        print(f"  {cmds.shell(cmds.dump)}")
        print("restore into a new, empty database (stop the bot first, then point DATABASE_URL at it):")
        print(f"  {cmds.shell(cmds.create)}")
        print(f"  {cmds.shell(cmds.restore)}")
        print(f"media files are not in the database: also copy MEDIA_DIR {settings.media_dir.resolve()}")
        return 0
    dest = backup.resolve_destination(dest)
    report = await asyncio.to_thread(backup.run_pg_dump, url, dest, force=args.force)
    print(f"pg_dump written to {report.path} ({_megabytes(report.size)}, {report.seconds:.1f} s)")
    print(f"  pg_restore --list reads it: {report.tables} tables with data")
    from storage.copy import media_paths
    from storage.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            paths = await media_paths(conn)  # read after the dump: a superset of what it refers to
    finally:
        await engine.dispose()
    media_dest = backup.media_dir_for(report.path)
    if args.with_media:
        media = await asyncio.to_thread(backup.copy_media, settings.media_dir, paths, media_dest)
    else:
        media = await asyncio.to_thread(backup.media_summary, settings.media_dir, paths)
    _print_media(media, settings.media_dir, media_dest)
    return 0


async def _db_copy(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from storage import backup
    from storage.copy import CopyError, CountMismatch, copy_database

    source = args.source or settings.database_url
    shown = make_url(source).render_as_string(hide_password=True)
    try:
        target_shown = make_url(args.to).render_as_string(hide_password=True)
    except Exception:
        target_shown = "--to"
    print(f"copying {shown} -> {target_shown}", file=sys.stderr)
    print("rows written to the source after this starts are not copied: stop the bot for the final copy",
          file=sys.stderr)  # fmt: skip
    report = None
    try:
        report = await copy_database(source, args.to, batch=args.batch, on_progress=_progress_bar("rows"))
    except CountMismatch as exc:
        report = exc.report
        failure = str(exc)
    except CopyError as exc:
        print(f"\nprolita-bot: {exc}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        print(f"\nprolita-bot: the copy failed, the target was left unchanged: {exc}", file=sys.stderr)
        return 1
    else:
        failure = None
    width = max(len(t.name) for t in report.tables)
    print(f"{'table':<{width}}  {'source':>9}  {'target':>9}")
    for t in report.tables:
        print(f"{t.name:<{width}}  {t.source:>9}  {t.target:>9}{'' if t.ok else '  MISMATCH'}")
    if failure:
        print(f"prolita-bot: {failure}", file=sys.stderr)
        return 1
    print(f"copied {report.rows} rows in {len(report.tables)} tables ({report.seconds:.1f} s); "
          f"{report.sequences} id sequences set past the copied ids; every count matches")  # fmt: skip
    media = await asyncio.to_thread(backup.media_summary, settings.media_dir, report.media_paths)
    print(f"media: {media.referenced} files referenced; they are not in the database. Give the PostgreSQL "
          f"instance the same MEDIA_DIR ({settings.media_dir.resolve()}) or a copy of it.")  # fmt: skip
    if media.missing:
        print(f"  WARNING: {len(media.missing)} referenced files are missing from MEDIA_DIR, e.g. {media.missing[0]}")
    print(f"next: set DATABASE_URL={report.target} (with its password) and start the bot")
    return 0


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    from storage.db import create_engine
    from storage.migrate import SchemaAhead, SchemaState, check_schema, upgrade

    if args.action == "backup":
        return await _db_backup(settings, args)
    if args.action == "copy":
        return await _db_copy(settings, args)
    engine = create_engine(settings.database_url)
    try:
        if args.action == "upgrade":
            try:
                before = await upgrade(engine)
            except SchemaAhead as exc:
                print(f"prolita-bot: {exc}", file=sys.stderr)
                return 2
            if before.state is SchemaState.BEHIND:
                print(f"upgraded from {before.database or '(empty)'} to {before.code}")
        status = await check_schema(engine)
        print(status.describe())
    finally:
        await engine.dispose()
    return 0 if status.ok else 1


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
        if args.reminders:
            from bot.services.reminders import ReminderConfig, ReminderConfigError

            try:
                data = json.loads(args.reminders.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ReminderConfigError("the file must hold one JSON object")
                ReminderConfig.from_json(data)
            except (OSError, ValueError) as exc:  # unreadable, not JSON, or a bad setting
                print(f"prolita-bot: --reminders {args.reminders}: {exc}", file=sys.stderr)
                return 2
            changes["reminder_settings"] = data or None
        if not changes:
            print(
                "prolita-bot: nothing to change; give --name, --budget, --prefix, --opens, --closes or --reminders",
                file=sys.stderr,
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
            _print_reminders(program)
    finally:
        await engine.dispose()
    return 0


def _print_reminders(program) -> None:
    from bot.services.reminders import config_of

    cfg = config_of(program)
    days = ", ".join(map(str, cfg.window_days))
    print(f"  reminders      : {'on' if cfg.enabled else 'off'}{'' if program.reminder_settings else ' (defaults)'}")
    print(f"    window closing in {days} day(s); revision not sent after {cfg.revision_working_days} working days")
    print(
        f"    no progress report for {cfg.report_days} days; year end in {', '.join(map(str, cfg.year_end_days))} days"
    )
    print(
        f"    officers: overdue after {cfg.sla_working_days} working days, "
        f"one level up every {cfg.escalation_step_working_days} more"
    )
    for kind, text in sorted(cfg.texts.items()):
        print(f"    own text for {kind}: {text}")


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
        return asyncio.run(_db(settings, args))
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
    if getattr(args, "webhook", False) and not settings.webhook_url:
        print("prolita-bot: run --webhook needs WEBHOOK_URL and WEBHOOK_SECRET (see README.md)", file=sys.stderr)
        return 2
    from bot.app import StartupError, TokenRejected, run_bot

    try:
        asyncio.run(run_bot(settings))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"prolita-bot: {exc}", file=sys.stderr)
        return 2
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
