"""Master data CSV import (kecamatan -> kelurahan -> RT), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import itertools

from sqlalchemy import func, select

from bot.services.wilayah import SAMPLE_CSV, ImportReport, ensure_sample_wilayah, import_csv
from storage.models import RT, Kecamatan, Kelurahan

SEEDED_KELURAHAN = {
    "Guntung",
    "Loktuan",
    "Gunung Elai",
    "Api-Api",
    "Bontang Baru",
    "Bontang Kuala",
    "Satimpo",
    "Tanjung Laut",
    "Tanjung Laut Indah",
    "Berbas Pantai",
    "Berbas Tengah",
    "Bontang Lestari",
    "Belimbing",
    "Gunung Telihan",
    "Kanaan",
}


async def _counts(sessionmaker) -> tuple[int, int, int]:
    async with sessionmaker() as s:
        return (
            await s.scalar(select(func.count()).select_from(Kecamatan)),
            await s.scalar(select(func.count()).select_from(Kelurahan)),
            await s.scalar(select(func.count()).select_from(RT)),
        )


async def _rt_numbers(sessionmaker, kelurahan: str) -> list[int]:
    async with sessionmaker() as s:
        return list(
            (
                await s.scalars(
                    select(RT.number).join(Kelurahan).where(Kelurahan.name == kelurahan).order_by(RT.number)
                )
            ).all()
        )


# --- the bundled sample -------------------------------------------------------------------------


def test_sample_csv_matches_seeded_names():
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 499
    assert {r["kelurahan"] for r in rows} == SEEDED_KELURAHAN
    assert {r["kecamatan"] for r in rows} == {"Bontang Utara", "Bontang Selatan", "Bontang Barat"}
    per_kel: dict[str, list[int]] = {}
    for r in rows:
        per_kel.setdefault(r["kelurahan"], []).append(int(r["rt"]))
    for numbers in per_kel.values():
        assert numbers == list(range(1, len(numbers) + 1))


async def test_sample_imports_499_rts_and_reimport_is_idempotent(sessionmaker):
    progress: list[tuple[int, int]] = []
    report = await import_csv(sessionmaker, SAMPLE_CSV, on_progress=lambda d, t: progress.append((d, t)))
    assert report.ok and report.written
    assert report.rows == 499
    assert (report.kecamatan_created, report.kecamatan_present) == (0, 3)
    assert (report.kelurahan_created, report.kelurahan_present) == (0, 15)
    assert (report.rt_created, report.rt_present, report.duplicates) == (499, 0, 0)
    assert await _counts(sessionmaker) == (3, 15, 499)
    assert progress[0] == (0, 499) and progress[-1] == (499, 499)
    assert len(progress) > 3 and all(a[0] <= b[0] for a, b in itertools.pairwise(progress))
    assert await _rt_numbers(sessionmaker, "Api-Api") == list(range(1, 43))

    again = await import_csv(sessionmaker, SAMPLE_CSV)
    assert again.ok and again.written
    assert (again.rt_created, again.rt_present) == (0, 499)
    assert (again.kelurahan_created, again.kelurahan_present) == (0, 15)
    assert await _counts(sessionmaker) == (3, 15, 499)


async def test_ensure_sample_wilayah_only_on_empty_database(sessionmaker):
    first = await ensure_sample_wilayah(sessionmaker)
    assert isinstance(first, ImportReport) and first.rt_created == 499
    assert await ensure_sample_wilayah(sessionmaker) is None
    assert await _counts(sessionmaker) == (3, 15, 499)


async def test_ensure_sample_wilayah_skips_when_any_rt_exists(sessionmaker):
    await import_csv(sessionmaker, "kecamatan,kelurahan,rt\nBontang Barat,Kanaan,1\n")
    assert await ensure_sample_wilayah(sessionmaker) is None
    assert await _counts(sessionmaker) == (3, 15, 1)


# --- validation ---------------------------------------------------------------------------------


async def test_bad_rows_are_all_reported_and_nothing_is_written(sessionmaker):
    text = (
        "kecamatan,kelurahan,rt\n"  # line 1
        "Bontang Utara,Api-Api,1\n"  # 2
        "Bontang Utara,Api-Api,RT 1000\n"  # 3: RT out of range
        "Bontang Utara,Api-Api,2\n"  # 4
        "Bontang Selatan,,3\n"  # 5: empty kelurahan
        "Bontang Utara,Api-Api,3\n"  # 6
        "Kota Baru,Desa Baru,1\n"  # 7: valid new names, but the file is bad so not written
    )
    report = await import_csv(sessionmaker, text)
    assert not report.ok and not report.written
    assert [line for line, _ in report.errors] == [3, 5]
    assert "RT number" in report.errors[0][1] and "1000" in report.errors[0][1]
    assert "empty kelurahan" in report.errors[1][1]
    assert report.rt_created == 0 and "nothing was written" in report.summary()
    assert await _counts(sessionmaker) == (3, 15, 0)


async def test_every_kind_of_error_is_reported(sessionmaker):
    text = (
        "Kecamatan,Kelurahan,RT,catatan\n"  # 1 (extra column ignored)
        "Bontang Utara,Api-Api,1,ok\n"  # 2
        "Bontang Utara,Api-Api\n"  # 3: missing column
        ",Guntung,4\n"  # 4: empty kecamatan
        "Bontang Utara,Loktuan,abc\n"  # 5: bad RT
        "Bontang Utara,Loktuan,0\n"  # 6: out of range
        "Bontang Selatan,Api Api,5\n"  # 7: Api-Api already under Bontang Utara (line 2)
        "Bontang Utara,Api-Api,1\n"  # 8: duplicate of line 2: not an error
        "\n"  # 9: blank, skipped
        "Bontang Utara,Loktuan,RT-7\n"  # 10
        "Bontang Utara,Lok\x00tuan,8\n"  # 11: control character
        f"Bontang Utara,{'x' * 81},9\n"  # 12: too long for the column
    )
    report = await import_csv(sessionmaker, text)
    lines = [line for line, _ in report.errors]
    assert lines == [3, 4, 5, 6, 7, 11, 12]
    messages = dict(report.errors)
    assert "missing column" in messages[3] and "rt" in messages[3]
    assert "empty kecamatan" in messages[4]
    assert "'abc'" in messages[5]
    assert "RT number" in messages[6]
    assert "line 2" in messages[7] and "Bontang Utara" in messages[7]
    assert "control characters" in messages[11]
    assert "longer than 80" in messages[12]
    assert report.duplicates == 1
    assert report.rows == 10
    assert await _counts(sessionmaker) == (3, 15, 0)


async def test_header_problems(sessionmaker):
    report = await import_csv(sessionmaker, "kecamatan,desa,nomor\nBontang Utara,Api-Api,1\n")
    assert report.errors and report.errors[0][0] == 1
    assert "kelurahan" in report.errors[0][1] and "rt" in report.errors[0][1]

    empty = await import_csv(sessionmaker, b"")
    assert empty.errors and empty.errors[0][0] == 1

    header_only = await import_csv(sessionmaker, b"kecamatan,kelurahan,rt\n")
    assert header_only.errors and "no data rows" in header_only.errors[0][1]

    latin1 = await import_csv(
        sessionmaker, "kecamatan,kelurahan,rt\nBontang Utara,Api-Api,1\nK\xe9c,X,1\n".encode("latin-1")
    )
    assert [line for line, _ in latin1.errors] == [3] and "UTF-8" in latin1.errors[0][1]
    assert await _counts(sessionmaker) == (3, 15, 0)


async def test_rt_number_spellings(sessionmaker):
    text = "kecamatan,kelurahan,rt\n" + "".join(
        f"Bontang Barat,Kanaan,{v}\n" for v in ["5", "05", "RT 05", "rt.005", "RT-5", "Rt 6", "007", "999"]
    )
    report = await import_csv(sessionmaker, text)
    assert report.ok
    assert report.rt_created == 4 and report.duplicates == 4
    assert await _rt_numbers(sessionmaker, "Kanaan") == [5, 6, 7, 999]


# --- formats and name matching --------------------------------------------------------------------


async def test_semicolon_delimiter_and_bom(sessionmaker, tmp_path):
    path = tmp_path / "wilayah.csv"
    path.write_bytes(
        "\ufeffKECAMATAN;Kelurahan;Rt;Keterangan\r\n"
        "Bontang Selatan;Tanjung Laut Indah;01;ada koma, di sini\r\n"
        "Bontang Selatan;Tanjung Laut Indah;02;\r\n".encode()
    )
    report = await import_csv(sessionmaker, path)
    assert report.ok and report.written, report.errors
    assert (report.rt_created, report.kelurahan_present, report.kelurahan_created) == (2, 1, 0)
    assert await _rt_numbers(sessionmaker, "Tanjung Laut Indah") == [1, 2]

    # The same file given as text and as a plain str path.
    as_text = await import_csv(sessionmaker, path.read_text(encoding="utf-8"))
    as_str_path = await import_csv(sessionmaker, str(path))
    assert as_text.rt_present == as_str_path.rt_present == 2


async def test_tolerant_name_matching_uses_existing_rows(sessionmaker):
    text = (
        "kecamatan,kelurahan,rt\n"
        "Kec. Bontang Utara,Kel. Api Api,1\n"
        "KECAMATAN  bontang-utara,kelurahan api.api,2\n"
        "bontang utara,API-API,3\n"
        "Bontang Barat,Kel.Gunung  Telihan,4\n"
    )
    report = await import_csv(sessionmaker, text)
    assert report.ok and report.written
    assert (report.kecamatan_created, report.kelurahan_created) == (0, 0)
    assert (report.kecamatan_present, report.kelurahan_present) == (2, 2)
    assert report.rt_created == 4
    assert await _counts(sessionmaker) == (3, 15, 4)
    assert await _rt_numbers(sessionmaker, "Api-Api") == [1, 2, 3]
    assert await _rt_numbers(sessionmaker, "Gunung Telihan") == [4]


async def test_new_city_creates_its_kecamatan_and_kelurahan(sessionmaker):
    text = (
        "kecamatan,kelurahan,rt\n"
        "Samarinda Ulu,Kel. Air Hitam,1\n"
        "Samarinda Ulu,Air Hitam,2\n"
        "Samarinda Ulu,Dadi Mulya,1\n"
        "Kecamatan Samarinda Ilir,Sidodamai,RT 03\n"
    )
    report = await import_csv(sessionmaker, text)
    assert report.ok and report.written
    assert (report.kecamatan_created, report.kelurahan_created, report.rt_created) == (2, 3, 4)
    assert not report.warnings
    async with sessionmaker() as s:
        kec = set((await s.scalars(select(Kecamatan.name))).all())
        assert {"Samarinda Ulu", "Samarinda Ilir"} <= kec
        kel = (
            await s.execute(
                select(Kelurahan.name, Kecamatan.name)
                .join(Kecamatan)
                .where(Kecamatan.name.like("Samarinda%"))
            )
        ).all()
    assert sorted(kel) == [
        ("Air Hitam", "Samarinda Ulu"),
        ("Dadi Mulya", "Samarinda Ulu"),
        ("Sidodamai", "Samarinda Ilir"),
    ]
    assert await _rt_numbers(sessionmaker, "Air Hitam") == [1, 2]
    assert await _counts(sessionmaker) == (5, 18, 4)

    again = await import_csv(sessionmaker, text)
    assert (again.kecamatan_created, again.kelurahan_created, again.rt_created) == (0, 0, 0)
    assert (again.kecamatan_present, again.kelurahan_present, again.rt_present) == (2, 3, 4)


async def test_same_kelurahan_name_under_a_new_kecamatan_is_warned(sessionmaker):
    report = await import_csv(sessionmaker, "kecamatan,kelurahan,rt\nBontang Utra,Api-Api,1\n")
    assert report.ok and report.written
    assert report.kecamatan_created == 1 and report.kelurahan_created == 1
    assert len(report.warnings) == 1 and report.warnings[0][0] == 2
    assert "Bontang Utara" in report.warnings[0][1]


async def test_dry_run_counts_but_writes_nothing(sessionmaker):
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    report = await import_csv(sessionmaker, SAMPLE_CSV, on_progress=on_progress, dry_run=True)
    assert report.ok and not report.written
    assert report.rt_created == 499 and progress[-1] == (499, 499)
    assert await _counts(sessionmaker) == (3, 15, 0)


async def test_concurrent_imports_do_not_collide(sessionmaker):
    city = "kecamatan,kelurahan,rt\nSamarinda Ulu,Air Hitam,1\nSamarinda Ulu,Air Hitam,2\n"
    reports = await asyncio.gather(
        import_csv(sessionmaker, SAMPLE_CSV),
        import_csv(sessionmaker, SAMPLE_CSV),
        import_csv(sessionmaker, city),
        import_csv(sessionmaker, city),
    )
    assert all(r.ok and r.written for r in reports)
    assert sorted(r.rt_created for r in reports[:2]) == [0, 499]
    assert sorted(r.kecamatan_created for r in reports[2:]) == [0, 1]
    assert await _counts(sessionmaker) == (4, 16, 501)
