from __future__ import annotations

import itertools

import pytest

from bot.domain import permissions as perm
from bot.domain import workflow as wf
from bot.domain.workflow import (
    ACTIONS,
    COUNTS_AGAINST_CEILING,
    STATUSES,
    TERMINAL,
    TransitionError,
    allowed_actions,
    can,
    next_status,
)

# The full expected table, written out independently of TRANSITIONS.
EXPECTED: dict[tuple[str, str], str] = {
    ("draf", "ajukan"): "diajukan",
    ("perlu_revisi", "ajukan"): "diajukan",
    ("diajukan", "setujui"): "disetujui",
    ("diajukan", "tolak"): "ditolak",
    ("diajukan", "minta_revisi"): "perlu_revisi",
    ("draf", "tarik"): "ditarik",
    ("diajukan", "tarik"): "ditarik",
    ("perlu_revisi", "tarik"): "ditarik",
    ("disetujui", "lapor_progres"): "pelaksanaan",
    ("pelaksanaan", "lapor_progres"): "pelaksanaan",
    ("disetujui", "lapor_selesai"): "menunggu_verifikasi_selesai",
    ("pelaksanaan", "lapor_selesai"): "menunggu_verifikasi_selesai",
    ("menunggu_verifikasi_selesai", "tolak_selesai"): "pelaksanaan",
    ("menunggu_verifikasi_selesai", "verifikasi_selesai"): "selesai",
}

ALL_PAIRS = list(itertools.product(STATUSES, ACTIONS))


def test_vocabulary() -> None:
    assert STATUSES == (
        "draf",
        "diajukan",
        "perlu_revisi",
        "disetujui",
        "ditolak",
        "ditarik",
        "pelaksanaan",
        "menunggu_verifikasi_selesai",
        "selesai",
    )
    assert set(ACTIONS) == {a for _, a in EXPECTED}
    assert dict(wf.TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS)
def test_every_pair(status: str, action: str) -> None:
    if (status, action) in EXPECTED:
        assert can(status, action)
        assert next_status(status, action) == EXPECTED[(status, action)]
    else:
        assert not can(status, action)
        with pytest.raises(TransitionError) as exc:
            next_status(status, action)
        assert (exc.value.current, exc.value.action) == (status, action)


@pytest.mark.parametrize(("status", "action"), [("draf", "terbang"), ("hilang", "ajukan"), ("", "")])
def test_unknown_names_raise_transition_error(status: str, action: str) -> None:
    with pytest.raises(TransitionError):
        next_status(status, action)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("draf", ("ajukan", "tarik")),
        ("diajukan", ("setujui", "tolak", "minta_revisi", "tarik")),
        ("perlu_revisi", ("ajukan", "tarik")),
        ("disetujui", ("lapor_progres", "lapor_selesai")),
        ("ditolak", ()),
        ("ditarik", ()),
        ("pelaksanaan", ("lapor_progres", "lapor_selesai")),
        ("menunggu_verifikasi_selesai", ("tolak_selesai", "verifikasi_selesai")),
        ("selesai", ()),
        ("hilang", ()),
    ],
)
def test_allowed_actions(status: str, expected: tuple[str, ...]) -> None:
    assert allowed_actions(status) == expected


def test_terminal_statuses_have_no_way_out() -> None:
    assert TERMINAL == {s for s in STATUSES if not allowed_actions(s)}


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("draf", False),
        ("diajukan", True),
        ("perlu_revisi", True),
        ("disetujui", True),
        ("ditolak", False),
        ("ditarik", False),
        ("pelaksanaan", True),
        ("menunggu_verifikasi_selesai", True),
        ("selesai", True),
    ],
)
def test_counts_against_ceiling(status: str, counts: bool) -> None:
    assert (status in COUNTS_AGAINST_CEILING) is counts
    assert wf.counts_against_ceiling(status) is counts


def test_every_status_reachable_from_draf() -> None:
    seen, frontier = {"draf"}, ["draf"]
    while frontier:
        s = frontier.pop()
        for a in allowed_actions(s):
            t = next_status(s, a)
            if t not in seen:
                seen.add(t)
                frontier.append(t)
    assert seen == set(STATUSES)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_maps_to_a_permission(action: str) -> None:
    assert wf.PERMISSION_FOR_ACTION[action] in perm.ACTIONS


@pytest.mark.parametrize(
    ("action", "role"),
    [
        ("ajukan", perm.KETUA_RT),
        ("tarik", perm.KETUA_RT),
        ("lapor_progres", perm.KETUA_RT),
        ("lapor_selesai", perm.KETUA_RT),
        ("setujui", perm.PETUGAS),
        ("tolak", perm.PETUGAS),
        ("minta_revisi", perm.PETUGAS),
        ("tolak_selesai", perm.PETUGAS),
        ("verifikasi_selesai", perm.PETUGAS),
    ],
)
def test_who_performs_each_action(action: str, role: str) -> None:
    permission = wf.PERMISSION_FOR_ACTION[action]
    assert perm.allowed({role}, permission)
    other = perm.PETUGAS if role == perm.KETUA_RT else perm.KETUA_RT
    assert not perm.allowed({other}, permission)
