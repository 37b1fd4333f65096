"""reply_markup parsing and validation (inline keyboards, reply keyboards, remove, force reply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import ApiError, bad_request
from .text import check_link

MarkupKind = Literal["inline", "keyboard", "remove", "force_reply"]

_INLINE_ACTIONS = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay",
)  # fmt: skip
_KEYBOARD_REQUESTS = (
    "request_contact", "request_location", "request_poll", "request_users", "request_chat", "web_app",
    "request_managed_bot",
)  # fmt: skip


@dataclass
class Markup:
    kind: MarkupKind
    data: dict[str, Any]


class _MarkupError(Exception):
    pass


def _string_field(obj: dict[str, Any], name: str, *, optional: bool = True) -> str:
    if name not in obj or obj[name] is None:
        if optional:
            return ""
        raise _MarkupError(f'Can\'t find field "{name}"')
    value = obj[name]
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise _MarkupError(f'Field "{name}" must be of type String')
    return str(value)


def _bool_field(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _MarkupError(f'Field "{name}" must be of type Boolean')
    return value


def _inline_button(button: Any) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise _MarkupError("InlineKeyboardButton must be an Object")
    text = _string_field(button, "text", optional=False)
    result: dict[str, Any] = {"text": text}
    for key in ("icon_custom_emoji_id", "style"):
        if button.get(key):
            result[key] = button[key]
    url = _string_field(button, "url")
    if url:
        if check_link(url) is None:
            raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
        return {**result, "url": url}
    if "callback_data" in button and button["callback_data"] is not None:
        data = _string_field(button, "callback_data")
        if data:
            if len(data.encode("utf-8")) > 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            return {**result, "callback_data": data}
    for key in _INLINE_ACTIONS[2:]:
        if key in button and button[key] is not None:
            value = button[key]
            if key == "web_app" and (not isinstance(value, dict) or not value.get("url")):
                raise _MarkupError('Can\'t find field "url"')
            return {**result, key: value}
    raise _MarkupError("Text buttons are unallowed in the inline keyboard")


def _keyboard_button(button: Any) -> dict[str, Any]:
    if isinstance(button, str):
        return {"text": button}
    if not isinstance(button, dict):
        raise _MarkupError("KeyboardButton must be a String or an Object")
    text = _string_field(button, "text", optional=False)
    result: dict[str, Any] = {"text": text}
    for key in ("icon_custom_emoji_id", "style"):
        if button.get(key):
            result[key] = button[key]
    if _bool_field(button, "request_contact") or _bool_field(button, "request_phone_number"):
        return {**result, "request_contact": True}
    if _bool_field(button, "request_location"):
        return {**result, "request_location": True}
    for key in ("request_poll", "request_users", "request_chat", "web_app", "request_managed_bot"):
        if key in button and button[key] is not None:
            return {**result, key: button[key]}
    return result


def parse_markup_value(value: Any) -> Markup | None:
    """Validate a decoded reply_markup object; None if it holds no markup (like Telegram)."""
    try:
        if not isinstance(value, dict):
            raise _MarkupError("Object expected as reply markup")
        rows: list[list[dict[str, Any]]] = []
        inline_rows: list[list[dict[str, Any]]] = []
        options: dict[str, Any] = {}
        remove = force_reply = False
        for key, field in value.items():
            if key == "keyboard":
                if not isinstance(field, list):
                    raise _MarkupError('Field "keyboard" of the ReplyKeyboardMarkup must be an Array')
                for row in field:
                    if not isinstance(row, list):
                        raise _MarkupError(
                            'Field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays'
                        )
                    parsed = []
                    for button in row:
                        try:
                            parsed.append(_keyboard_button(button))
                        except _MarkupError as exc:
                            raise _MarkupError(f"Can't parse keyboard button: {exc}") from None
                    rows.append(parsed)
            elif key == "inline_keyboard":
                if not isinstance(field, list):
                    raise _MarkupError('Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
                for row in field:
                    if not isinstance(row, list):
                        raise _MarkupError(
                            'Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                        )
                    parsed = []
                    for button in row:
                        try:
                            parsed.append(_inline_button(button))
                        except _MarkupError as exc:
                            raise _MarkupError(f"Can't parse inline keyboard button: {exc}") from None
                    inline_rows.append(parsed)
            elif key in ("resize_keyboard", "one_time_keyboard", "is_persistent", "selective"):
                if field is not None and not isinstance(field, bool):
                    raise _MarkupError(f'Field "{key}" of the reply markup must be of the type Boolean')
                if field:
                    options[key] = True
            elif key == "input_field_placeholder":
                if field:
                    placeholder = str(field)
                    if len(placeholder) > 64:
                        raise ApiError(400, "Bad Request: input field placeholder is too long")
                    options[key] = placeholder
            elif key in ("remove_keyboard", "hide_keyboard"):
                if field is not None and not isinstance(field, bool):
                    raise _MarkupError(
                        'Field "remove_keyboard" of the ReplyKeyboardRemove must be of the type Boolean'
                    )
                remove = bool(field)
            elif key in ("force_reply", "force_reply_keyboard"):
                if field is not None and not isinstance(field, bool):
                    raise _MarkupError('Field "force_reply" of the reply markup must be of the type Boolean')
                force_reply = bool(field)
    except _MarkupError as exc:
        raise bad_request(str(exc)) from None
    if rows:
        data: dict[str, Any] = {"keyboard": rows}
        for key in (
            "is_persistent",
            "resize_keyboard",
            "one_time_keyboard",
            "input_field_placeholder",
            "selective",
        ):
            if key in options:
                data[key] = options[key]
        return Markup("keyboard", data)
    if inline_rows:
        if sum(len(row) for row in inline_rows) > 100:
            raise bad_request("reply markup is too long")
        return Markup("inline", {"inline_keyboard": inline_rows})
    if remove:
        data = {"remove_keyboard": True}
        if options.get("selective"):
            data["selective"] = True
        return Markup("remove", data)
    if force_reply:
        data = {"force_reply": True}
        for key in ("input_field_placeholder", "selective"):
            if key in options:
                data[key] = options[key]
        return Markup("force_reply", data)
    return None


def parse_reply_markup(raw: str) -> Markup | None:
    import json

    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise bad_request("can't parse reply keyboard markup JSON object") from None
    return parse_markup_value(value)
