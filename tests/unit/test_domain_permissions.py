from __future__ import annotations

import pytest

from bot.domain.permissions import (
    ACTIONS,
    ADMIN,
    APPOINT_OFFICER,
    CITY_SCOPE,
    COMMANDS_BY_ROLE,
    KETUA_RT,
    PETUGAS,
    REGISTER_RT_HEAD,
    REPORT_PROGRESS,
    REVIEW_PROPOSAL,
    SUBMIT_PROPOSAL,
    VERIFY_PROGRESS,
    VERIFY_REGISTRATION,
    WARGA,
    Forbidden,
    Scope,
    actions_for,
    allowed,
    contains,
    covers,
    effective_scope,
    parent_scopes,
    require,
)

KEL = Scope.for_kelurahan(1, 10)
KEC = Scope.for_kecamatan(1)
OTHER_KEC = Scope.for_kecamatan(2)
KOTA = Scope.for_kota()


@pytest.mark.parametrize(
    ("level", "kec", "kel"),
    [
        ("kelurahan", 1, 10),
        ("kecamatan", 1, None),
        ("kota", None, None),
    ],
)
def test_scope_valid(level: str, kec: int | None, kel: int | None) -> None:
    scope = Scope(level, kec, kel)  # type: ignore[arg-type]
    assert (scope.level, scope.kecamatan_id, scope.kelurahan_id) == (level, kec, kel)


@pytest.mark.parametrize(
    ("level", "kec", "kel"),
    [
        ("kelurahan", None, 10),
        ("kelurahan", 1, None),
        ("kelurahan", None, None),
        ("kecamatan", None, None),
        ("kecamatan", 1, 10),
        ("kota", 1, None),
        ("kota", None, 10),
        ("rt", None, None),
        ("provinsi", None, None),
    ],
)
def test_scope_invalid(level: str, kec: int | None, kel: int | None) -> None:
    with pytest.raises(ValueError):
        Scope(level, kec, kel)  # type: ignore[arg-type]


def test_scope_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        KEL.level = "kota"  # type: ignore[misc]
    assert {KEL, Scope.for_kelurahan(1, 10)} == {KEL}


@pytest.mark.parametrize(
    ("scope", "kec", "kel", "expected"),
    [
        (KOTA, 1, 10, True),
        (KOTA, 3, 99, True),
        (KEC, 1, 10, True),
        (KEC, 1, 11, True),
        (KEC, 2, 20, False),
        (KEC, None, 10, False),
        (KEL, 1, 10, True),
        (KEL, 1, 11, False),
        (KEL, 2, 10, False),  # inconsistent location: refuse
        (KEL, None, 10, True),  # kecamatan unknown: the kelurahan decides
        (KEL, 1, None, False),
    ],
)
def test_covers(scope: Scope, kec: int | None, kel: int | None, expected: bool) -> None:
    assert covers(scope, kec, kel) is expected


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        (KOTA, KOTA, True),
        (KOTA, KEC, True),
        (KOTA, KEL, True),
        (KEC, KOTA, False),
        (KEC, KEC, True),
        (KEC, KEL, True),
        (OTHER_KEC, KEL, False),
        (KEL, KEL, True),
        (KEL, KEC, False),
        (KEL, Scope.for_kelurahan(1, 11), False),
    ],
)
def test_contains(outer: Scope, inner: Scope, expected: bool) -> None:
    assert contains(outer, inner) is expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (KEL, [Scope.for_kecamatan(1), KOTA]),
        (KEC, [KOTA]),
        (KOTA, []),
    ],
)
def test_parent_scopes(scope: Scope, expected: list[Scope]) -> None:
    assert parent_scopes(scope) == expected
    assert all(contains(p, scope) for p in parent_scopes(scope))


def test_forbidden_and_require() -> None:
    require(True, "never")
    with pytest.raises(Forbidden) as exc:
        require(False, "out_of_scope")
    assert exc.value.reason == "out_of_scope"


ALL_ROLES = (WARGA, KETUA_RT, PETUGAS, ADMIN)
# role -> actions it must be allowed; anything not listed must be refused for that role alone.
EXPECTED = {
    WARGA: {REGISTER_RT_HEAD},
    KETUA_RT: {REGISTER_RT_HEAD, SUBMIT_PROPOSAL, REPORT_PROGRESS},
    PETUGAS: {REGISTER_RT_HEAD, VERIFY_REGISTRATION, REVIEW_PROPOSAL, VERIFY_PROGRESS},
    ADMIN: {REGISTER_RT_HEAD, VERIFY_REGISTRATION, REVIEW_PROPOSAL, VERIFY_PROGRESS, APPOINT_OFFICER},
}
CORE_ACTIONS = sorted(
    {
        REGISTER_RT_HEAD,
        VERIFY_REGISTRATION,
        APPOINT_OFFICER,
        SUBMIT_PROPOSAL,
        REVIEW_PROPOSAL,
        REPORT_PROGRESS,
        VERIFY_PROGRESS,
    }
)


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("action", CORE_ACTIONS)
def test_allowed_table(role: str, action: str) -> None:
    assert allowed({role}, action) is (action in EXPECTED[role])


def test_admin_can_do_everything_officers_can() -> None:
    assert COMMANDS_BY_ROLE[PETUGAS] <= COMMANDS_BY_ROLE[ADMIN]
    assert not COMMANDS_BY_ROLE[ADMIN] >= COMMANDS_BY_ROLE[KETUA_RT]


def test_every_role_has_the_warga_base() -> None:
    for role in ALL_ROLES:
        assert COMMANDS_BY_ROLE[WARGA] <= COMMANDS_BY_ROLE[role]
    assert allowed(set(), REGISTER_RT_HEAD)  # no stored role at all = warga


def test_roles_combine() -> None:
    roles = {KETUA_RT, PETUGAS}
    assert allowed(roles, SUBMIT_PROPOSAL)
    assert allowed(roles, REVIEW_PROPOSAL)
    assert not allowed(roles, APPOINT_OFFICER)
    assert actions_for(roles) == COMMANDS_BY_ROLE[KETUA_RT] | COMMANDS_BY_ROLE[PETUGAS]


def test_unknown_role_grants_nothing_extra() -> None:
    assert not allowed({"superuser"}, APPOINT_OFFICER)


def test_unknown_action_is_a_bug() -> None:
    with pytest.raises(ValueError):
        allowed({ADMIN}, "launch_rockets")


def test_actions_table_consistent() -> None:
    assert set().union(*COMMANDS_BY_ROLE.values()) == ACTIONS
    assert set(CORE_ACTIONS) <= ACTIONS


@pytest.mark.parametrize(
    ("roles", "officer_scope", "expected"),
    [
        ({ADMIN}, None, CITY_SCOPE),
        ({ADMIN, PETUGAS}, KEL, CITY_SCOPE),
        ({PETUGAS}, KEC, KEC),
        ({PETUGAS}, None, None),
        ({KETUA_RT}, KEL, None),
        (set(), None, None),
    ],
)
def test_effective_scope(roles: set[str], officer_scope: Scope | None, expected: Scope | None) -> None:
    assert effective_scope(roles, officer_scope) == expected
