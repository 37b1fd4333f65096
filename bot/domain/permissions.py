"""Roles, allowed actions and officer scopes (kelurahan -> kecamatan -> kota), as pure logic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

WARGA = "warga"
KETUA_RT = "ketua_rt"
PETUGAS = "petugas"
ADMIN = "admin"
ROLES = (WARGA, KETUA_RT, PETUGAS, ADMIN)

LEVEL_KELURAHAN = "kelurahan"
LEVEL_KECAMATAN = "kecamatan"
LEVEL_KOTA = "kota"
LEVELS = (LEVEL_KELURAHAN, LEVEL_KECAMATAN, LEVEL_KOTA)

ScopeLevel = Literal["kelurahan", "kecamatan", "kota"]

# --- actions ---------------------------------------------------------------------------------
# Everyone (warga is every user's base role)
VIEW_INFO = "view_info"
REGISTER_RT_HEAD = "register_rt_head"
MANAGE_PRIVACY = "manage_privacy"
# Ketua RT
SUBMIT_PROPOSAL = "submit_proposal"
WITHDRAW_PROPOSAL = "withdraw_proposal"
VIEW_OWN_PROPOSALS = "view_own_proposals"
REPORT_PROGRESS = "report_progress"
# Petugas (within scope) and admin (city-wide)
VERIFY_REGISTRATION = "verify_registration"
REVIEW_PROPOSAL = "review_proposal"
VERIFY_PROGRESS = "verify_progress"
VIEW_SCOPE_PROPOSALS = "view_scope_proposals"
EXPORT_REPORTS = "export_reports"
# Admin only
APPOINT_OFFICER = "appoint_officer"
REVOKE_OFFICER = "revoke_officer"
MANAGE_PROGRAM = "manage_program"
REVOKE_RT_HEAD = "revoke_rt_head"

_WARGA_ACTIONS = frozenset({VIEW_INFO, REGISTER_RT_HEAD, MANAGE_PRIVACY})
_KETUA_RT_ACTIONS = frozenset({SUBMIT_PROPOSAL, WITHDRAW_PROPOSAL, VIEW_OWN_PROPOSALS, REPORT_PROGRESS})
_PETUGAS_ACTIONS = frozenset(
    {VERIFY_REGISTRATION, REVIEW_PROPOSAL, VERIFY_PROGRESS, VIEW_SCOPE_PROPOSALS, EXPORT_REPORTS}
)
_ADMIN_ONLY_ACTIONS = frozenset({APPOINT_OFFICER, REVOKE_OFFICER, MANAGE_PROGRAM, REVOKE_RT_HEAD})

COMMANDS_BY_ROLE: dict[str, frozenset[str]] = {
    WARGA: _WARGA_ACTIONS,
    KETUA_RT: _WARGA_ACTIONS | _KETUA_RT_ACTIONS,
    PETUGAS: _WARGA_ACTIONS | _PETUGAS_ACTIONS,
    ADMIN: _WARGA_ACTIONS | _PETUGAS_ACTIONS | _ADMIN_ONLY_ACTIONS,
}
ACTIONS: frozenset[str] = frozenset().union(*COMMANDS_BY_ROLE.values())


class Forbidden(Exception):
    """The actor may not do this; ``reason`` is a short code the bot renders."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def require(cond: bool, reason: str) -> None:
    """Raise ``Forbidden(reason)`` unless ``cond``."""
    if not cond:
        raise Forbidden(reason)


def allowed(role_set: Iterable[str], action: str) -> bool:
    """Whether any of the roles (plus the implicit ``warga``) grants ``action``.

    Unknown roles grant nothing; an unknown action is a programming error (ValueError).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return any(action in COMMANDS_BY_ROLE.get(role, frozenset()) for role in (WARGA, *role_set))


def actions_for(role_set: Iterable[str]) -> frozenset[str]:
    """All actions the roles grant (for building menus)."""
    return frozenset().union(*(COMMANDS_BY_ROLE.get(r, frozenset()) for r in (WARGA, *role_set)))


@dataclass(frozen=True)
class Scope:
    """An officer's area. Kelurahan needs both ids, kecamatan only its id, kota none."""

    level: ScopeLevel
    kecamatan_id: int | None = None
    kelurahan_id: int | None = None

    def __post_init__(self) -> None:
        if self.level == LEVEL_KELURAHAN:
            ok = self.kecamatan_id is not None and self.kelurahan_id is not None
        elif self.level == LEVEL_KECAMATAN:
            ok = self.kecamatan_id is not None and self.kelurahan_id is None
        elif self.level == LEVEL_KOTA:
            ok = self.kecamatan_id is None and self.kelurahan_id is None
        else:
            raise ValueError(f"unknown scope level {self.level!r}")
        if not ok:
            raise ValueError(
                f"inconsistent {self.level} scope: kecamatan_id={self.kecamatan_id!r}, "
                f"kelurahan_id={self.kelurahan_id!r}"
            )

    @classmethod
    def for_kota(cls) -> Scope:
        return cls(LEVEL_KOTA)

    @classmethod
    def for_kecamatan(cls, kecamatan_id: int) -> Scope:
        return cls(LEVEL_KECAMATAN, kecamatan_id)

    @classmethod
    def for_kelurahan(cls, kecamatan_id: int, kelurahan_id: int) -> Scope:
        return cls(LEVEL_KELURAHAN, kecamatan_id, kelurahan_id)


CITY_SCOPE = Scope.for_kota()


def covers(scope: Scope, kecamatan_id: int | None, kelurahan_id: int | None) -> bool:
    """Whether the scope includes an RT in that kecamatan/kelurahan."""
    if scope.level == LEVEL_KOTA:
        return True
    if scope.level == LEVEL_KECAMATAN:
        return kecamatan_id is not None and kecamatan_id == scope.kecamatan_id
    if kelurahan_id is None or kelurahan_id != scope.kelurahan_id:
        return False
    return kecamatan_id is None or kecamatan_id == scope.kecamatan_id


def contains(outer: Scope, inner: Scope) -> bool:
    """Whether ``outer`` includes the whole of ``inner`` (a scope contains itself)."""
    if outer.level == LEVEL_KOTA:
        return True
    if inner.level == LEVEL_KOTA:
        return False
    if outer.level == LEVEL_KECAMATAN:
        return inner.kecamatan_id == outer.kecamatan_id
    return inner.level == LEVEL_KELURAHAN and inner.kelurahan_id == outer.kelurahan_id


def parent_scopes(scope: Scope) -> list[Scope]:
    """Escalation chain above ``scope``: kelurahan -> [kecamatan, kota]; kota -> []."""
    if scope.level == LEVEL_KELURAHAN:
        assert scope.kecamatan_id is not None
        return [Scope.for_kecamatan(scope.kecamatan_id), CITY_SCOPE]
    if scope.level == LEVEL_KECAMATAN:
        return [CITY_SCOPE]
    return []


def effective_scope(role_set: Iterable[str], officer_scope: Scope | None) -> Scope | None:
    """Scope for officer actions: admins get the whole city, petugas their appointment, others None."""
    roles = set(role_set)
    if ADMIN in roles:
        return CITY_SCOPE
    if PETUGAS in roles:
        return officer_scope
    return None
