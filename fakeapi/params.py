"""Request parameters, read the way the Bot API server reads them.

The Bot API turns every parameter into a string first (query string, form field, multipart field or a
JSON body value), so "absent" and "empty" are the same thing, booleans are "true"/"1"/"yes", and JSON
objects arrive serialized. :class:`Params` gives typed access with those semantics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_LEADING_INT = re.compile(r"^[+-]?\d+")
_INT = re.compile(r"^-?\d+$")
# Parameters that are JSON-serialized objects/arrays (decoded in the call log).
JSON_PARAMS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "media", "commands", "scope", "allowed_updates",
        "reply_parameters", "link_preview_options", "options", "menu_button", "results", "message_ids",
        "reaction", "question_entities", "correct_option_ids", "explanation_entities", "rights",
    }
)  # fmt: skip
# Parameters that stay strings in the call log even when they look like numbers or booleans.
STRING_PARAMS = frozenset(
    {
        "text", "caption", "callback_query_id", "file_id", "phone_number", "first_name", "last_name",
        "question", "title", "address", "description", "short_description", "name", "emoji", "url",
        "secret_token", "inline_message_id", "vcard", "explanation", "performer", "action", "parse_mode",
        "language_code", "ip_address", "photo", "document", "voice", "audio", "video", "animation",
        "sticker", "video_note", "thumbnail", "certificate",
    }
)  # fmt: skip

# Parameters Telegram still accepts but no longer documents (Bot API 7.0 replaced them; the current
# spec lists only the replacement), with what to send instead. The fake honours them like Telegram
# does and records their use (``ApiCall.deprecated``), so a test can tell a bot still sends them.
DEPRECATED_PARAMS = {
    "disable_web_page_preview": "link_preview_options",
    "reply_to_message_id": "reply_parameters",
    "allow_sending_without_reply": "reply_parameters",
}


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def describe(self) -> dict[str, Any]:
        return {"upload": self.filename, "size": self.size, "content_type": self.content_type}


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class Params:
    def __init__(self, values: dict[str, str] | None = None, files: dict[str, UploadedFile] | None = None):
        self.values: dict[str, str] = dict(values or {})
        self.files: dict[str, UploadedFile] = dict(files or {})

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any], files: dict[str, UploadedFile] | None = None) -> Params:
        values = {}
        for key, value in mapping.items():
            text = _stringify(value)
            if text is not None:
                values[str(key)] = text
        return cls(values, files)

    # --- raw access
    def raw(self, name: str) -> str:
        return self.values.get(name, "")

    def has(self, name: str) -> bool:
        return bool(self.values.get(name)) or name in self.files

    def get_str(self, name: str) -> str:
        return self.values.get(name, "")

    def required_str(self, name: str) -> str:
        value = self.values.get(name, "")
        if not value:
            raise bad_request(f'Parameter "{name}" is required')
        return value

    def get_int(
        self, name: str, default: int = 0, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """td's get_integer_arg: empty -> default; leading digits parsed (garbage -> 0); then clamped."""
        text = self.values.get(name, "")
        if not text:
            return default
        match = _LEADING_INT.match(text.strip())
        value = int(match.group(0)) if match else 0
        if minimum is not None:
            value = max(minimum, value)
        if maximum is not None:
            value = min(maximum, value)
        return value

    def get_exact_int(self, name: str) -> int | None:
        """An integer only if the whole value is one (td::to_integer_safe)."""
        text = self.values.get(name, "").strip()
        if not text or not re.fullmatch(r"[+-]?\d+", text):
            return None
        return int(text)

    def get_float(self, name: str) -> float | None:
        text = self.values.get(name, "").strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            return 0.0

    def get_bool(self, name: str) -> bool:
        return self.values.get(name, "").strip().lower() in ("true", "yes", "1")

    def get_json(self, name: str, what: str | None = None) -> Any:
        """Decoded JSON, None if absent; bad JSON -> ``can't parse <what> JSON object``."""
        text = self.values.get(name, "")
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise bad_request(f"can't parse {what or name} JSON object") from None

    # --- files
    def resolve_input_file(self, value: str, field: str | None = None) -> UploadedFile | str | None:
        """td's get_input_file: ``attach://<name>`` refers to a multipart part; other strings are
        file_ids or URLs; an empty value falls back to a part named like the field."""
        if value.startswith("attach://"):
            return self.files.get(value[len("attach://") :])
        if value:
            return value
        if field is not None:
            return self.files.get(field)
        return None

    def get_file(self, name: str) -> UploadedFile | str | None:
        return self.resolve_input_file(self.values.get(name, ""), name)

    def deprecated(self) -> list[str]:
        """The deprecated parameters present (see :data:`DEPRECATED_PARAMS`), in request order."""
        return [key for key in self.values if key in DEPRECATED_PARAMS]

    def describe(self) -> dict[str, Any]:
        """Parameters for the call log, typed for convenient assertions: JSON parameters decoded,
        integers and booleans converted (except free-text ones), uploads as descriptors."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if key in JSON_PARAMS:
                try:
                    out[key] = json.loads(value)
                    continue
                except ValueError:
                    pass
            elif key not in STRING_PARAMS:
                if _INT.match(value):
                    out[key] = int(value)
                    continue
                if value in ("true", "false"):
                    out[key] = value == "true"
                    continue
            out[key] = value
        for key, upload in self.files.items():
            out[key] = upload.describe()
        return out
