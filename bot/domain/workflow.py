"""Proposal status machine: one transition table, plus which statuses count against the ceiling."""

from __future__ import annotations

from types import MappingProxyType

from bot.domain import permissions as perm

# --- statuses --------------------------------------------------------------------------------
DRAF = "draf"
DIAJUKAN = "diajukan"
PERLU_REVISI = "perlu_revisi"
DISETUJUI = "disetujui"
DITOLAK = "ditolak"
DITARIK = "ditarik"
PELAKSANAAN = "pelaksanaan"
MENUNGGU_VERIFIKASI_SELESAI = "menunggu_verifikasi_selesai"
SELESAI = "selesai"
STATUSES = (
    DRAF,
    DIAJUKAN,
    PERLU_REVISI,
    DISETUJUI,
    DITOLAK,
    DITARIK,
    PELAKSANAAN,
    MENUNGGU_VERIFIKASI_SELESAI,
    SELESAI,
)

# --- actions ---------------------------------------------------------------------------------
AJUKAN = "ajukan"
SETUJUI = "setujui"
TOLAK = "tolak"
MINTA_REVISI = "minta_revisi"
TARIK = "tarik"
LAPOR_PROGRES = "lapor_progres"
LAPOR_SELESAI = "lapor_selesai"
TOLAK_SELESAI = "tolak_selesai"
VERIFIKASI_SELESAI = "verifikasi_selesai"
ACTIONS = (
    AJUKAN,
    SETUJUI,
    TOLAK,
    MINTA_REVISI,
    TARIK,
    LAPOR_PROGRES,
    LAPOR_SELESAI,
    TOLAK_SELESAI,
    VERIFIKASI_SELESAI,
)

TRANSITIONS: MappingProxyType[tuple[str, str], str] = MappingProxyType(
    {
        (DRAF, AJUKAN): DIAJUKAN,
        (PERLU_REVISI, AJUKAN): DIAJUKAN,
        (DIAJUKAN, SETUJUI): DISETUJUI,
        (DIAJUKAN, TOLAK): DITOLAK,
        (DIAJUKAN, MINTA_REVISI): PERLU_REVISI,
        (DRAF, TARIK): DITARIK,
        (DIAJUKAN, TARIK): DITARIK,
        (PERLU_REVISI, TARIK): DITARIK,
        (DISETUJUI, LAPOR_PROGRES): PELAKSANAAN,
        (PELAKSANAAN, LAPOR_PROGRES): PELAKSANAAN,
        (DISETUJUI, LAPOR_SELESAI): MENUNGGU_VERIFIKASI_SELESAI,
        (PELAKSANAAN, LAPOR_SELESAI): MENUNGGU_VERIFIKASI_SELESAI,
        (MENUNGGU_VERIFIKASI_SELESAI, TOLAK_SELESAI): PELAKSANAAN,
        (MENUNGGU_VERIFIKASI_SELESAI, VERIFIKASI_SELESAI): SELESAI,
    }
)

# Drafts do not reserve money; rejected and withdrawn proposals release it.
COUNTS_AGAINST_CEILING = frozenset(
    {DIAJUKAN, PERLU_REVISI, DISETUJUI, PELAKSANAAN, MENUNGGU_VERIFIKASI_SELESAI, SELESAI}
)
TERMINAL = frozenset({DITOLAK, DITARIK, SELESAI})
EDITABLE = frozenset({DRAF, PERLU_REVISI})
AWAITING_OFFICER = frozenset({DIAJUKAN, MENUNGGU_VERIFIKASI_SELESAI})

# Who performs each action, as a permissions action (ketua RT vs petugas/admin).
PERMISSION_FOR_ACTION: MappingProxyType[str, str] = MappingProxyType(
    {
        AJUKAN: perm.SUBMIT_PROPOSAL,
        TARIK: perm.WITHDRAW_PROPOSAL,
        LAPOR_PROGRES: perm.REPORT_PROGRESS,
        LAPOR_SELESAI: perm.REPORT_PROGRESS,
        SETUJUI: perm.REVIEW_PROPOSAL,
        TOLAK: perm.REVIEW_PROPOSAL,
        MINTA_REVISI: perm.REVIEW_PROPOSAL,
        TOLAK_SELESAI: perm.VERIFY_PROGRESS,
        VERIFIKASI_SELESAI: perm.VERIFY_PROGRESS,
    }
)


class TransitionError(ValueError):
    """``action`` is not allowed from status ``current``."""

    def __init__(self, current: str, action: str) -> None:
        super().__init__(f"cannot {action!r} from {current!r}")
        self.current = current
        self.action = action


def next_status(current: str, action: str) -> str:
    """The status after ``action``; raises :class:`TransitionError` if not allowed."""
    try:
        return TRANSITIONS[(current, action)]
    except (KeyError, TypeError):
        raise TransitionError(current, action) from None


def can(current: str, action: str) -> bool:
    """Whether ``action`` is allowed from ``current``."""
    return (current, action) in TRANSITIONS


def allowed_actions(status: str) -> tuple[str, ...]:
    """Actions allowed from ``status``, in ``ACTIONS`` order (empty for terminal/unknown)."""
    return tuple(a for a in ACTIONS if (status, a) in TRANSITIONS)


def counts_against_ceiling(status: str) -> bool:
    """Whether a proposal in ``status`` uses up part of the RT's yearly ceiling."""
    return status in COUNTS_AGAINST_CEILING
