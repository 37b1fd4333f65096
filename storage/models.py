"""SQLAlchemy 2 typed models. Times are timezone-aware UTC; money is integer rupiah."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as UTC and always returns aware UTC datetimes (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


# --- roles -----------------------------------------------------------------------------------

ROLE_WARGA = "warga"
ROLE_KETUA_RT = "ketua_rt"
ROLE_PETUGAS = "petugas"
ROLE_ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(128), default="")
    last_name: Mapped[str | None] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="id")
    language_chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    erased_at: Mapped[dt.datetime | None] = mapped_column()  # /hapusdata: personal data removed
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or f"#{self.id}"


class Consent(Base):
    """Explicit consent under UU PDP No. 27/2022, kept with its time and text version."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(16))
    given_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()


# --- master data: kecamatan -> kelurahan -> RT -------------------------------------------------


class Kecamatan(Base):
    __tablename__ = "kecamatan"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)

    kelurahan: Mapped[list[Kelurahan]] = relationship(back_populates="kecamatan", order_by="Kelurahan.name")


class Kelurahan(Base):
    __tablename__ = "kelurahan"
    __table_args__ = (UniqueConstraint("kecamatan_id", "name", name="uq_kelurahan_kecamatan_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kecamatan_id: Mapped[int] = mapped_column(ForeignKey("kecamatan.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))

    kecamatan: Mapped[Kecamatan] = relationship(back_populates="kelurahan", lazy="joined")


class RT(Base):
    __tablename__ = "rt"
    __table_args__ = (
        UniqueConstraint("kelurahan_id", "number", name="uq_rt_kelurahan_number"),
        CheckConstraint("number > 0 AND number < 1000", name="number_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kelurahan_id: Mapped[int] = mapped_column(ForeignKey("kelurahan.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)

    kelurahan: Mapped[Kelurahan] = relationship(lazy="joined")

    def label(self) -> str:
        return f"RT {self.number:02d}"


# --- Ketua RT registrations ----------------------------------------------------------------------

REG_PENDING = "menunggu"
REG_VERIFIED = "terverifikasi"
REG_REJECTED = "ditolak"
REG_REPLACED = "diganti"


class RTHead(Base):
    """A registration of a user as Ketua RT; at most one verified per RT at a time."""

    __tablename__ = "rt_heads"
    __table_args__ = (
        Index(
            "uq_rt_heads_one_verified_per_rt",
            "rt_id",
            unique=True,
            sqlite_where=text("status = 'terverifikasi'"),
            postgresql_where=text("status = 'terverifikasi'"),
        ),
        Index(
            "uq_rt_heads_one_open_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("status IN ('menunggu', 'terverifikasi')"),
            postgresql_where=text("status IN ('menunggu', 'terverifikasi')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rt_id: Mapped[int] = mapped_column(ForeignKey("rt.id"), index=True)
    full_name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=REG_PENDING, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    rt: Mapped[RT] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")


# --- officers -------------------------------------------------------------------------------------

SCOPE_KELURAHAN = "kelurahan"
SCOPE_KECAMATAN = "kecamatan"
SCOPE_KOTA = "kota"


class Officer(Base):
    """A petugas appointment with a scope; revoked appointments stay for the audit trail."""

    __tablename__ = "officers"
    __table_args__ = (
        Index(
            "uq_officers_one_active_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    kecamatan_id: Mapped[int | None] = mapped_column(ForeignKey("kecamatan.id"))
    kelurahan_id: Mapped[int | None] = mapped_column(ForeignKey("kelurahan.id"))
    appointed_by: Mapped[int] = mapped_column(BigInteger)
    appointed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

    kecamatan: Mapped[Kecamatan | None] = relationship(lazy="joined")
    kelurahan: Mapped[Kelurahan | None] = relationship(lazy="joined")
    user: Mapped[User] = relationship(lazy="joined")


# --- programme configuration per fiscal year ------------------------------------------------


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(80))
    budget_per_rt: Mapped[int] = mapped_column(BigInteger)
    code_prefix: Mapped[str] = mapped_column(String(8))
    submission_opens: Mapped[dt.date] = mapped_column(Date)
    submission_closes: Mapped[dt.date] = mapped_column(Date)
    # Reminders to RT heads for this year (bot/services/reminders.py): None means the defaults there.
    reminder_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    categories: Mapped[list[ProgramCategory]] = relationship(
        back_populates="program", order_by="ProgramCategory.position", lazy="selectin"
    )


class ProgramCategory(Base):
    __tablename__ = "program_categories"
    __table_args__ = (UniqueConstraint("program_id", "code", name="uq_program_categories_program_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_physical: Mapped[bool] = mapped_column(Boolean, default=False)
    # Optional share of the RT's yearly ceiling, in percent (e.g. 20 means 20 %).
    min_share_pct: Mapped[int | None] = mapped_column(Integer)
    max_share_pct: Mapped[int | None] = mapped_column(Integer)

    program: Mapped[Program] = relationship(back_populates="categories")


# --- audit, outbox, handled updates, FSM -----------------------------------------------------


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


OUTBOX_PENDING = "pending"
OUTBOX_SENT = "sent"
OUTBOX_FAILED = "failed"


class Outbox(Base):
    """A notification written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_broadcast", "broadcast_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=OUTBOX_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    # status "sending": the sender that claimed the row holds it until then (a lease); past it, a
    # crashed sender's row is claimed again.
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    # status "sending": which sender (instance id and a per-start token) holds the claim; a sender
    # starting after a crash recognises the dead one's rows by it (bot/notifier.py, recover()).
    claim_token: Mapped[str | None] = mapped_column(String(96))
    broadcast_id: Mapped[int | None] = mapped_column(Integer)  # kind "broadcast": its Broadcast


class HandledUpdate(Base):
    """Update ids whose effects are committed; written in the same transaction as those effects."""

    __tablename__ = "handled_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class FSMRecord(Base):
    """Conversation state for aiogram's FSM, so a dialog survives a restart."""

    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- proposals (usulan) ----------------------------------------------------------------------

MEDIA_FOTO_AWAL = "foto_awal"
MEDIA_BUKTI_MUSYAWARAH = "bukti_musyawarah"


class Proposal(Base):
    """An RT's proposal for one fiscal year; ``version`` counts content changes (stale buttons)."""

    __tablename__ = "proposals"
    __table_args__ = (
        Index("ix_proposals_rt_year_status", "rt_id", "fiscal_year", "status"),
        Index("ix_proposals_status_submitted", "status", "submitted_at"),
        Index("ix_proposals_year_seq", "fiscal_year", "seq"),  # a code typed by a resident (/cek)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    fiscal_year: Mapped[int] = mapped_column(Integer)
    rt_id: Mapped[int] = mapped_column(ForeignKey("rt.id"), index=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), default="draf")
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    seq: Mapped[int | None] = mapped_column(Integer)
    category_code: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(255))
    attendees: Mapped[int | None] = mapped_column(Integer)
    total_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    wizard_step: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    submitted_at: Mapped[dt.datetime | None] = mapped_column()
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    decision_note: Mapped[str | None] = mapped_column(Text)
    revision_parts: Mapped[list[str] | None] = mapped_column(JSON)
    revision_note: Mapped[str | None] = mapped_column(Text)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    rt: Mapped[RT] = relationship(lazy="joined")
    lines: Mapped[list[RabLine]] = relationship(
        back_populates="proposal",
        order_by="RabLine.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    media: Mapped[list[ProposalMedia]] = relationship(
        back_populates="proposal",
        order_by="[ProposalMedia.kind, ProposalMedia.position, ProposalMedia.id]",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def media_of(self, kind: str) -> list[ProposalMedia]:
        return [m for m in self.media if m.kind == kind]


class RabLine(Base):
    """One line of the RAB; ``total`` = volume × unit price, rounded half up (bot.domain.rab)."""

    __tablename__ = "rab_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    volume: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    unit: Mapped[str] = mapped_column(String(32), default="")
    unit_price: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)

    proposal: Mapped[Proposal] = relationship(back_populates="lines")


class Media(Base):
    """A stored file, content-addressed: one row and one file per distinct content."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # A small JPEG (longest side THUMB_SIZE) for cards and overviews; None for PDFs.
    thumb_path: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProposalMedia(Base):
    """A file attached to a proposal as a photo of the initial state or as musyawarah evidence."""

    __tablename__ = "proposal_media"
    __table_args__ = (
        UniqueConstraint("proposal_id", "kind", "media_id", name="uq_proposal_media_proposal_kind_media"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    telegram_file_id: Mapped[str | None] = mapped_column(String(255))
    telegram_file_unique_id: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    proposal: Mapped[Proposal] = relationship(back_populates="media")
    file: Mapped[Media] = relationship(lazy="joined")


class ProposalEvent(Base):
    """The proposal's timeline: every transition (and notable edit) with who, when, from, to, why."""

    __tablename__ = "proposal_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CodeSequence(Base):
    """Last proposal sequence number given out per code prefix and fiscal year."""

    __tablename__ = "code_sequences"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


# --- progress reports (pelaksanaan) -----------------------------------------------------------

REPORT_PENDING = "menunggu"
REPORT_VERIFIED = "terverifikasi"
REPORT_NEEDS_EVIDENCE = "perlu_bukti"
MEDIA_FOTO_PROGRES = "foto_progres"
MEDIA_NOTA = "nota"


class ProgressReport(Base):
    """A Ketua RT's progress report on an approved proposal: percent done, cumulative spending, evidence.

    ``flags`` are the evidence checks computed when the report was made (bot.domain.evidence), kept
    with the report as a JSON list of ``{"kind", "detail", "media_id"}`` (``media_id`` is None for
    report-level flags such as ``over_budget``); they are facts about the report at that time, shown
    to officers, never used to refuse it.
    """

    __tablename__ = "progress_reports"
    __table_args__ = (
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent_range"),
        CheckConstraint("spent_total >= 0", name="spent_total_nonnegative"),
        Index("ix_progress_reports_proposal_created", "proposal_id", "created_at"),
        Index("ix_progress_reports_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    reporter_id: Mapped[int] = mapped_column(BigInteger)
    percent: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    spent_total: Mapped[int] = mapped_column(BigInteger, default=0)
    over_budget_note: Mapped[str | None] = mapped_column(Text)
    backwards_reason: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=REPORT_PENDING)
    officer_note: Mapped[str | None] = mapped_column(Text)
    verified_by: Mapped[int | None] = mapped_column(BigInteger)
    verified_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    proposal: Mapped[Proposal] = relationship(lazy="joined")
    media: Mapped[list[ProgressMedia]] = relationship(
        back_populates="report",
        order_by="[ProgressMedia.kind, ProgressMedia.position, ProgressMedia.id]",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def media_of(self, kind: str) -> list[ProgressMedia]:
        return [m for m in self.media if m.kind == kind]


class ProgressMedia(Base):
    """A site photo (``foto_progres``) or a receipt (``nota``) of a report, with what its EXIF said."""

    __tablename__ = "progress_media"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("progress_reports.id", ondelete="CASCADE"), index=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)
    telegram_file_id: Mapped[str | None] = mapped_column(String(255))
    telegram_file_unique_id: Mapped[str | None] = mapped_column(String(64))
    exif_taken_at: Mapped[dt.datetime | None] = mapped_column()
    exif_lat: Mapped[float | None] = mapped_column(Float)
    exif_lon: Mapped[float | None] = mapped_column(Float)
    phash: Mapped[str | None] = mapped_column(String(64))
    # The 64-bit hash cut in four 16-bit bands, each indexed, so the reuse check reads only the
    # stored photos that can be near a new one (see phash_bands); set whenever phash is.
    phash_b0: Mapped[int | None] = mapped_column(Integer, index=True)
    phash_b1: Mapped[int | None] = mapped_column(Integer, index=True)
    phash_b2: Mapped[int | None] = mapped_column(Integer, index=True)
    phash_b3: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    report: Mapped[ProgressReport] = relationship(back_populates="media")
    file: Mapped[Media] = relationship(lazy="joined")

    @validates("phash")
    def _set_bands(self, _key: str, value: str | None) -> str | None:
        self.phash_b0, self.phash_b1, self.phash_b2, self.phash_b3 = phash_bands(value) or (None, None, None, None)
        return value


PHASH_BANDS = 4
PHASH_BAND_BITS = 16


def phash_bands(phash: str | None) -> tuple[int, int, int, int] | None:
    """A 64-bit perceptual hash (16 hex digits) as four 16-bit integers, high bits first; None for
    no hash or another length (such rows are always compared in full)."""
    if not phash or len(phash) != 16:
        return None
    try:
        value = int(phash, 16)
    except ValueError:
        return None
    b0, b1, b2, b3 = (value >> (PHASH_BAND_BITS * (PHASH_BANDS - 1 - i)) & 0xFFFF for i in range(PHASH_BANDS))
    return b0, b1, b2, b3


class ProposalCompletion(Base):
    """The close of a proposal (→ selesai): realised amount, unspent remainder, who verified it, when."""

    __tablename__ = "proposal_completions"

    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    report_id: Mapped[int] = mapped_column(ForeignKey("progress_reports.id"))
    realised_amount: Mapped[int] = mapped_column(BigInteger)
    unspent: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    verified_by: Mapped[int] = mapped_column(BigInteger)


# --- residents: follows, notice settings, aspirations, musyawarah votes ---------------------------------

NOTIFY_ALL = "semua"  # every decision and progress report
NOTIFY_DECISIONS = "keputusan"  # decisions only (approved, rejected, revision, completed)
NOTIFY_WEEKLY = "mingguan"  # one summary a week
NOTIFY_OFF = "mati"
NOTIFY_MODES = (NOTIFY_ALL, NOTIFY_DECISIONS, NOTIFY_WEEKLY, NOTIFY_OFF)
DIGEST_DAILY = "harian"  # officers' morning digest: every working day
DIGEST_WEEKLY = "mingguan"  # on the first working day of the week
DIGEST_OFF = "mati"
DIGEST_MODES = (DIGEST_DAILY, DIGEST_WEEKLY, DIGEST_OFF)
QUIET_START_DEFAULT = 21 * 60  # minutes after local midnight (21:00 WITA)
QUIET_END_DEFAULT = 6 * 60  # 06:00 WITA


class NotificationPrefs(Base):
    """How a user wants notices: follow-notice mode, quiet hours (local minutes; start == end: none)
    and, for officers, how often the morning digest comes."""

    __tablename__ = "notification_prefs"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    mode: Mapped[str] = mapped_column(String(12), default=NOTIFY_ALL)
    quiet_start: Mapped[int] = mapped_column(Integer, default=QUIET_START_DEFAULT)
    quiet_end: Mapped[int] = mapped_column(Integer, default=QUIET_END_DEFAULT)
    digest: Mapped[str] = mapped_column(String(12), default=DIGEST_DAILY, server_default=DIGEST_DAILY)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Follow(Base):
    """A user following an RT (all its proposals) or a single proposal."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("user_id", "rt_id", name="uq_follows_user_rt"),
        UniqueConstraint("user_id", "proposal_id", name="uq_follows_user_proposal"),
        CheckConstraint("(rt_id IS NULL) <> (proposal_id IS NULL)", name="one_target"),
        Index("ix_follows_rt", "rt_id"),
        Index("ix_follows_proposal", "proposal_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rt_id: Mapped[int | None] = mapped_column(ForeignKey("rt.id", ondelete="CASCADE"))
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


ASPIRASI_BARU = "baru"
ASPIRASI_DIBAHAS = "akan_dibahas"  # will be discussed at the musyawarah
ASPIRASI_DIUSULKAN = "dijadikan_usulan"  # became a proposal (proposal_id)
ASPIRASI_DITOLAK = "tidak_dapat"  # cannot be followed up (reason)


class Aspiration(Base):
    """A resident's idea for their RT, and what the Ketua RT did with it. ``user_id`` is None once the
    resident erased their data (/hapusdata); the text stays for the RT's musyawarah record."""

    __tablename__ = "aspirations"
    __table_args__ = (
        Index("ix_aspirations_user_created", "user_id", "created_at"),
        Index("ix_aspirations_rt_status", "rt_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rt_id: Mapped[int] = mapped_column(ForeignKey("rt.id"))
    text: Mapped[str] = mapped_column(Text)
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"))
    telegram_file_id: Mapped[str | None] = mapped_column(String(255))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    share_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=ASPIRASI_BARU)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    file: Mapped[Media | None] = relationship(lazy="joined")


VOTE_OPEN = "terbuka"
VOTE_CLOSED = "ditutup"


class MusyawarahVote(Base):
    """A vote among an RT's followers on up to 10 candidate ideas, open until ``closes_at``."""

    __tablename__ = "votes"
    __table_args__ = (Index("ix_votes_status_closes", "status", "closes_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rt_id: Mapped[int] = mapped_column(ForeignKey("rt.id"), index=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    question: Mapped[str] = mapped_column(String(300))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    closes_at: Mapped[dt.datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default=VOTE_OPEN)
    result: Mapped[list[int] | None] = mapped_column(JSON)  # votes per option, at closing
    voters: Mapped[int | None] = mapped_column(Integer)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column()


class VotePoll(Base):
    """The Telegram poll a follower was sent for a vote (``poll_id`` is Telegram's, known once sent)."""

    __tablename__ = "vote_polls"
    __table_args__ = (UniqueConstraint("vote_id", "user_id", name="uq_vote_polls_vote_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    poll_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    message_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class VoteAnswer(Base):
    """One person's answer to a vote (the latest, if they changed it before closing)."""

    __tablename__ = "vote_answers"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    option_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- broadcasts (/siaran) ---------------------------------------------------------------------


class Broadcast(Base):
    """An admin's message to an audience: one outbox row per recipient (``Outbox.broadcast_id``).

    Progress (sent / failed of ``total``) is counted from those rows, so it survives a restart;
    the admin's progress message is edited until ``finished_at``."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger, index=True)
    audience: Mapped[str] = mapped_column(String(32))  # heads | officers | all | rt:ID | kel:ID | kec:ID
    text: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer, default=0)
    skipped_blocked: Mapped[int] = mapped_column(Integer, default=0)  # blocked the bot before: not enqueued
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()


# --- reminders to RT heads (bot/services/reminders.py) ------------------------------------------


class ReminderSent(Base):
    """A reminder given to a person: one row per occurrence (``kind``, ``subject_id``, ``occurrence``)
    and at most one per person per local day (``local_date``, the day it is delivered). Written in
    the transaction that enqueues its outbox row, so two instances running the reminder job at once
    give one reminder (the second insert is skipped by the unique keys)."""

    __tablename__ = "reminders_sent"
    __table_args__ = (
        UniqueConstraint("kind", "user_id", "subject_id", "occurrence", name="uq_reminders_sent_occurrence"),
        UniqueConstraint("user_id", "local_date", name="uq_reminders_sent_user_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(BigInteger)
    subject_id: Mapped[int] = mapped_column(Integer)  # the programme (window) or the proposal
    occurrence: Mapped[str] = mapped_column(String(40))  # which one: a stage, a revision event, a date
    local_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Escalation(Base):
    """An item waiting for an officer past the SLA, brought to one level of the chain (the officers
    of its kelurahan, then its kecamatan, then the city officers and the admins). One row per item,
    waiting period (``since``: a proposal sent again starts a new one) and scope level, inserted in the
    transaction that enqueues the notices: two instances running the job at once escalate once."""

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("item_type", "item_id", "since", "scope_level", name="uq_escalations_item_level"),
        Index("ix_escalations_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_type: Mapped[str] = mapped_column(String(12))  # "proposal" (review) or "report" (verification)
    item_id: Mapped[int] = mapped_column(Integer)
    since: Mapped[dt.datetime] = mapped_column()  # when it started waiting (UTC)
    level: Mapped[int] = mapped_column(Integer)  # 0: the officer in charge; 1, 2...: the levels above
    scope_level: Mapped[str] = mapped_column(String(16))  # whose turn: kelurahan, kecamatan or kota
    age_days: Mapped[int] = mapped_column(Integer)  # working days waited when escalated
    recipients: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
