"""gettext through aiogram's I18n, loaded straight from the ``.po`` catalogs (no compiled files).

Indonesian (``id``) is the default and must be complete; English (``en``) is second. Outside a
handler (scheduler, notifier) wrap calls in ``with i18n.context(), i18n.use_locale(lang):``.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "id"
LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}


class PoI18n(I18n):
    """aiogram's I18n reading ``locales/<lang>/LC_MESSAGES/messages.po`` through Babel."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # aiogram's ``gettext`` looks up ``I18n.get_current()``; a subclass has a context variable
        # of its own, so set the base class's one too.
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for lang_dir in sorted(self.path.iterdir()):
            po_path = lang_dir / "LC_MESSAGES" / f"{self.domain}.po"
            if not po_path.is_file():
                continue
            with po_path.open("rb") as fp:
                catalog = read_po(fp, locale=lang_dir.name)
            buf = io.BytesIO()
            # Fuzzy entries are never used: a test makes sure there are none in ``id``.
            write_mo(buf, catalog, use_fuzzy=False)
            buf.seek(0)
            translations[lang_dir.name] = gettext.GNUTranslations(buf)
        return translations


def build_i18n() -> PoI18n:
    return PoI18n(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


def normalize_language(code: str | None) -> str:
    """Map a Telegram ``language_code`` (``en-US``, ``id``) to a supported locale, else ``id``."""
    if not code:
        return DEFAULT_LOCALE
    base = code.split("-")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LOCALE
