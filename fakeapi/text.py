"""Formatted text as Telegram handles it: HTML / MarkdownV2 / Markdown parsing, entity detection,
trimming, and rendering entities back to HTML.

Offsets and lengths of entities are in UTF-16 code units, like in the Bot API. The HTML and Markdown
parsers follow TDLib's (``td/telegram/MessageEntity.cpp``) behaviour and error texts, so that a bot
which gets ``can't parse entities`` from Telegram gets it here too.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

SUPPORTED_HTML_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
        "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote",
    }
)  # fmt: skip

ENTITY_TYPES = frozenset(
    {
        "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold", "italic",
        "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote", "code", "pre",
        "text_link", "text_mention", "custom_emoji", "date_time",
    }
)  # fmt: skip

# Entity types that auto-detected entities must not overlap.
_NON_SPLITTABLE = frozenset(
    {"code", "pre", "text_link", "text_mention", "custom_emoji", "url", "email", "mention", "hashtag",
     "cashtag", "bot_command", "phone_number"}
)  # fmt: skip


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Utf16Index:
    """Maps Python string indices to UTF-16 offsets and back."""

    def __init__(self, text: str) -> None:
        self.text = text
        offsets = [0]
        total = 0
        for ch in text:
            total += 2 if ord(ch) > 0xFFFF else 1
            offsets.append(total)
        self.offsets = offsets
        self.length = total

    def to_u16(self, index: int) -> int:
        return self.offsets[index]

    def to_py(self, offset: int) -> int:
        """Python index of the character starting at (or containing) a UTF-16 offset."""
        offset = max(0, min(offset, self.length))
        return bisect.bisect_right(self.offsets, offset) - 1

    def slice(self, offset: int, length: int) -> str:
        return self.text[self.to_py(offset) : self.to_py(offset + length)]


def _entity_sort_key(entity: dict[str, Any]) -> tuple[int, int]:
    return (entity["offset"], -entity["length"])


def sort_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=_entity_sort_key)


# --------------------------------------------------------------------------------------------- links

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_OTHER_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?!\d)")
_HOST_RE = re.compile(r"^[\w\-.~%]+$", re.UNICODE)
_TG_USER_RE = re.compile(r"^tg://user\?id=(\d+)$", re.IGNORECASE)


def check_link(url: str) -> str | None:
    """Validate and normalise a link like Telegram (``example.com`` -> ``http://example.com/``).

    Returns ``None`` for links Telegram rejects (the entity is then silently dropped).
    """
    url = url.strip()
    if not url or any(ch.isspace() for ch in url):
        return None
    lower = url.lower()
    for scheme in ("tg", "ton"):
        if lower.startswith(scheme + ":"):
            rest = url[len(scheme) + 1 :].lstrip("/")
            if not rest:
                return None
            return f"{scheme}://{rest}"
    match = _SCHEME_RE.match(url)
    if match:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            return None
        rest = url[match.end() :]
    else:
        if _OTHER_SCHEME_RE.match(url):
            return None
        scheme = "http"
        rest = url
    split = re.match(r"^([^/?#]*)(.*)$", rest, re.S)
    assert split is not None
    hostport, tail = split.groups()
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    host, port = hostport, ""
    if ":" in hostport:
        host, port = hostport.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            return None
    host = host.lower().rstrip(".")
    if not host or not _HOST_RE.match(host) or ".." in host:
        return None
    if not tail:
        tail = "/"
    elif tail[0] in "?#":
        tail = "/" + tail
    return f"{scheme}://{host}{':' + port if port else ''}{tail}"


def link_user_id(url: str) -> int | None:
    match = _TG_USER_RE.match(url.strip())
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------- HTML


class EntityParseError(Exception):
    pass


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n\0\v\f"


def _decode_html_entity(text: str, pos: int) -> tuple[str | None, int]:
    """TDLib's decode_html_entity: returns (decoded character, new position) or (None, pos)."""
    n = len(text)

    def at(i: int) -> str:
        return text[i] if i < n else "\0"

    end = pos + 1
    code = 0
    if at(pos + 1) == "#":
        end += 1
        if at(pos + 2) == "x":
            end += 1
            while at(end) in "0123456789abcdefABCDEF" and at(end) != "\0":
                code = code * 16 + int(at(end), 16)
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        else:
            while at(end).isdigit() and at(end).isascii():
                code = code * 10 + int(at(end))
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        if code == 0 or code >= 0x10FFFF or end - pos >= 10 or 0xD800 <= code <= 0xDFFF:
            return None, pos
        decoded = chr(code)
    else:
        while at(end).isascii() and at(end).isalpha():
            end += 1
        name = text[pos + 1 : end]
        decoded = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(name)  # type: ignore[assignment]
        if decoded is None:
            return None, pos
    if at(end) == ";":
        end += 1
    return decoded, end


@dataclass
class _OpenTag:
    tag: str
    argument: str
    u16_offset: int
    out_pos: int  # index into the output list


def parse_html(text: str, *, known_users: dict[int, dict[str, Any]] | None = None) -> tuple[str, list[dict]]:
    """Parse Telegram-flavoured HTML. Raises EntityParseError with TDLib's message."""
    n = len(text)

    def at(i: int) -> str:
        return text[i] if i < n else "\0"

    def byte_offset(i: int) -> int:
        return len(text[:i].encode("utf-8"))

    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    nested: list[_OpenTag] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded, new_pos = _decode_html_entity(text, i)
            if decoded is not None:
                out.append(decoded)
                u16 += utf16_len(decoded)
                i = new_pos
                continue
        if c != "<":
            out.append(c)
            u16 += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != "/":
            while not _is_space(at(i)) and at(i) != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in SUPPORTED_HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
            argument = ""
            while at(i) != ">":
                while i < n and _is_space(at(i)):
                    i += 1
                if at(i) == ">":
                    break
                attr_begin = i
                while not _is_space(at(i)) and at(i) not in "=>":
                    i += 1
                attr_name = text[attr_begin:i]
                if not attr_name:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}'
                    )
                while i < n and _is_space(at(i)):
                    i += 1
                if at(i) != "=":
                    if tag == "blockquote" and attr_name == "expandable":
                        argument = "1"
                        continue
                    raise EntityParseError(
                        f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                        f"at byte offset {byte_offset(begin)}"
                    )
                i += 1
                while i < n and _is_space(at(i)):
                    i += 1
                if i >= n:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
                if at(i) not in "'\"":
                    token_begin = i
                    while (at(i).isascii() and at(i).isalnum()) or at(i) in ".-":
                        i += 1
                    value = text[token_begin:i].lower()
                    if not _is_space(at(i)) and at(i) != ">":
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {byte_offset(token_begin)}"
                        )
                else:
                    end_char = text[i]
                    i += 1
                    buf: list[str] = []
                    while i < n and text[i] != end_char:
                        if text[i] == "&":
                            decoded, new_pos = _decode_html_entity(text, i)
                            if decoded is not None:
                                buf.append(decoded)
                                i = new_pos
                                continue
                        buf.append(text[i])
                        i += 1
                    if at(i) == end_char:
                        i += 1
                    value = "".join(buf)
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
                if tag == "a" and attr_name == "href":
                    argument = value
                elif tag == "code" and attr_name == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr_name == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr_name == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attr_name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}'
                )
            nested.append(_OpenTag(tag, argument, u16, len(out)))
            i += 1  # skip '>'
            continue

        # end tag
        if not nested:
            raise EntityParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
        while not _is_space(at(i)) and at(i) != ">":
            i += 1
        end_tag = text[begin + 2 : i]
        while i < n and _is_space(at(i)):
            i += 1
        if at(i) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
        top = nested[-1]
        if end_tag and end_tag != top.tag:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {byte_offset(begin)}, expected "</{top.tag}>", '
                f'found "</{end_tag}>"'
            )
        if u16 > top.u16_offset:
            offset, length = top.u16_offset, u16 - top.u16_offset
            entity: dict[str, Any] | None = None
            tag = top.tag
            if tag in ("i", "em"):
                entity = {"type": "italic"}
            elif tag in ("b", "strong"):
                entity = {"type": "bold"}
            elif tag in ("s", "strike", "del"):
                entity = {"type": "strikethrough"}
            elif tag in ("u", "ins"):
                entity = {"type": "underline"}
            elif tag in ("tg-spoiler", "span"):
                entity = {"type": "spoiler"}
            elif tag == "tg-emoji":
                if not top.argument.isdigit() or int(top.argument) == 0:
                    raise EntityParseError("Invalid custom emoji identifier specified")
                entity = {"type": "custom_emoji", "custom_emoji_id": top.argument}
            elif tag == "a":
                url = top.argument or "".join(out[top.out_pos :])
                user_id = link_user_id(url)
                if user_id is not None:
                    user = (known_users or {}).get(user_id) or {
                        "id": user_id,
                        "is_bot": False,
                        "first_name": "",
                    }
                    entity = {"type": "text_mention", "user": user}
                else:
                    checked = check_link(url)
                    if checked is not None:
                        entity = {"type": "text_link", "url": checked}
            elif tag == "pre":
                last = entities[-1] if entities else None
                if (
                    last is not None
                    and last["type"] == "code"
                    and last["offset"] == offset
                    and last["length"] == length
                    and last.get("language")
                ):
                    last["type"] = "pre"
                else:
                    entity = {"type": "pre"}
            elif tag == "code":
                last = entities[-1] if entities else None
                if (
                    last is not None
                    and last["type"] == "pre"
                    and last["offset"] == offset
                    and last["length"] == length
                    and top.argument
                ):
                    last["language"] = top.argument
                else:
                    entity = {"type": "code"}
                    if top.argument:
                        entity["language"] = top.argument
            elif tag == "blockquote":
                entity = {"type": "expandable_blockquote" if top.argument else "blockquote"}
            if entity is not None:
                entities.append({"offset": offset, "length": length, **entity})
        nested.pop()
        i += 1  # skip '>'
    if nested:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{nested[-1].tag}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return "".join(out), _normalise_order(entities)


def _normalise_order(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for entity in sort_entities(entities):
        ordered = {"offset": entity["offset"], "length": entity["length"], "type": entity["type"]}
        for key, value in entity.items():
            if key not in ordered:
                ordered[key] = value
        result.append(ordered)
    return result


# ------------------------------------------------------------------------------------------ Markdown

_MDV2_TYPE_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> tuple[str, list[dict]]:
    """MarkdownV2 following TDLib's parser (bold, italic, underline, strike, spoiler, code, pre, links,
    custom emoji, block quotes). Raises EntityParseError with TDLib's messages."""
    n = len(text)

    def at(i: int) -> str:
        return text[i] if i < n else "\0"

    def byte_offset(i: int) -> int:
        return len(text[:i].encode("utf-8"))

    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    nested: list[dict[str, Any]] = []
    quote_start: int | None = None
    i = 0

    def push(ch: str) -> None:
        nonlocal u16
        out.append(ch)
        u16 += 2 if ord(ch) > 0xFFFF else 1

    while i < n:
        c = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        if at_line_start and quote_start is not None and c != ">":
            # the block quote ended on the previous line (without its final newline)
            end = u16 - 1 if out and out[-1] == "\n" else u16
            if end > quote_start:
                entities.append({"offset": quote_start, "length": end - quote_start, "type": "blockquote"})
            quote_start = None
        if c == "\\" and 0 < ord(at(i + 1)) <= 126:
            push(text[i + 1])
            i += 2
            continue
        reserved = "_*[]()~`>#+-=|{}.!"
        if nested and nested[-1]["type"] in ("code", "pre"):
            reserved = "`"
        if c not in reserved:
            push(c)
            i += 1
            continue
        is_end = False
        if nested:
            kind = nested[-1]["type"]
            is_end = {
                "bold": c == "*",
                "italic": c == "_" and at(i + 1) != "_",
                "code": c == "`",
                "pre": c == "`" and at(i + 1) == "`" and at(i + 2) == "`",
                "text_link": c == "]",
                "underline": c == "_" and at(i + 1) == "_",
                "strikethrough": c == "~",
                "spoiler": c == "|" and at(i + 1) == "|",
                "custom_emoji": c == "]",
            }[kind]
        if not is_end:
            begin = i
            argument = ""
            if c == ">" and at_line_start and not nested:
                if quote_start is None:
                    quote_start = u16
                i += 1
                continue
            if c == "_":
                if at(i + 1) == "_":
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif c == "*":
                kind = "bold"
            elif c == "~":
                kind = "strikethrough"
            elif c == "|" and at(i + 1) == "|":
                kind = "spoiler"
                i += 1
            elif c == "[":
                kind = "text_link"
            elif c == "`":
                if at(i + 1) == "`" and at(i + 2) == "`":
                    i += 3
                    kind = "pre"
                    language_end = i
                    while not _is_space(at(language_end)) and at(language_end) != "`":
                        language_end += 1
                    if i != language_end and language_end < n and at(language_end) != "`":
                        argument = text[i:language_end]
                        i = language_end
                    if at(i) in "\r\n" and at(i) != "\0":
                        if at(i + 1) in "\r\n" and at(i + 1) != "\0" and at(i) != at(i + 1):
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            elif c == "!" and at(i + 1) == "[":
                kind = "custom_emoji"
                i += 1
            else:
                raise EntityParseError(
                    f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
                )
            nested.append(
                {"type": kind, "argument": argument, "u16": u16, "byte": byte_offset(begin), "pos": len(out)}
            )
            i += 1
            continue

        top = nested.pop()
        kind = top["type"]
        skip = u16 == top["u16"]
        entity: dict[str, Any] = {"type": kind}
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
            if top["argument"]:
                entity["language"] = top["argument"]
        elif kind in ("text_link", "custom_emoji"):
            url = ""
            if at(i + 1) != "(":
                if kind == "custom_emoji":
                    raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                url = "".join(out[top["pos"] :])
            else:
                i += 2
                url_begin = i
                chars: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and 0 < ord(at(i + 1)) <= 126:
                        chars.append(text[i + 1])
                        i += 2
                        continue
                    chars.append(text[i])
                    i += 1
                if at(i) != ")":
                    raise EntityParseError(f"Can't find end of a URL at byte offset {byte_offset(url_begin)}")
                url = "".join(chars)
            if kind == "custom_emoji":
                match = re.match(r"^tg://emoji\?id=(\d+)$", url)
                if not match:
                    raise EntityParseError("Custom emoji URL must have an emoji identifier")
                entity["custom_emoji_id"] = match.group(1)
            else:
                user_id = link_user_id(url)
                if user_id is not None:
                    entity = {
                        "type": "text_mention",
                        "user": {"id": user_id, "is_bot": False, "first_name": ""},
                    }
                else:
                    checked = check_link(url)
                    if checked is None:
                        skip = True
                    else:
                        entity["url"] = checked
        if not skip:
            entities.append({"offset": top["u16"], "length": u16 - top["u16"], **entity})
        i += 1
    if nested:
        top = nested[-1]
        raise EntityParseError(
            f"Can't find end of {_MDV2_TYPE_NAMES[top['type']]} entity at byte offset {top['byte']}"
        )
    if quote_start is not None and u16 > quote_start:
        entities.append({"offset": quote_start, "length": u16 - quote_start, "type": "blockquote"})
    return "".join(out), _normalise_order(entities)


def parse_markdown(text: str) -> tuple[str, list[dict]]:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    n = len(text)

    def at(i: int) -> str:
        return text[i] if i < n else "\0"

    out: list[str] = []
    u16 = 0
    entities: list[dict[str, Any]] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and at(i + 1) in "_*`[":
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            u16 += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        language = ""
        if c == "`" and at(i + 1) == "`" and at(i + 2) == "`":
            is_pre = True
            i += 3
            lang_end = i
            while not _is_space(at(lang_end)) and at(lang_end) != "`":
                lang_end += 1
            if i != lang_end and lang_end < n and at(lang_end) != "`":
                language = text[i:lang_end]
                i = lang_end
            if at(i) in "\r\n" and at(i) != "\0":
                i += 1
        else:
            i += 1
        start_u16 = u16
        start_out = len(out)
        while i < n and (text[i] != end_char or (is_pre and not (at(i + 1) == "`" and at(i + 2) == "`"))):
            ch = text[i]
            out.append(ch)
            u16 += 2 if ord(ch) > 0xFFFF else 1
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {len(text[:begin].encode('utf-8'))}"
            )
        if is_pre:
            i += 2
        entity: dict[str, Any] | None = None
        if c == "[":
            url = ""
            if at(i + 1) == "(":
                i += 2
                chars = []
                while i < n and text[i] != ")":
                    chars.append(text[i])
                    i += 1
                url = "".join(chars)
            else:
                url = "".join(out[start_out:])
            user_id = link_user_id(url)
            if user_id is not None:
                entity = {"type": "text_mention", "user": {"id": user_id, "is_bot": False, "first_name": ""}}
            else:
                checked = check_link(url)
                if checked is not None:
                    entity = {"type": "text_link", "url": checked}
        elif c == "*":
            entity = {"type": "bold"}
        elif c == "_":
            entity = {"type": "italic"}
        elif is_pre:
            entity = {"type": "pre", **({"language": language} if language else {})}
        else:
            entity = {"type": "code"}
        if entity is not None and u16 > start_u16:
            entities.append({"offset": start_u16, "length": u16 - start_u16, **entity})
        i += 1
    return "".join(out), _normalise_order(entities)


# ---------------------------------------------------------------------------------- entity detection

_DETECTORS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:(?:https?|ftp)://[^\s<>\"]+|(?:www\.)?(?:[A-Za-z0-9-]+\.)+"
            r"(?:com|org|net|id|io|ru|de|uk|info|biz|gov|edu|app|dev|me|co|ly|tv|xyz|site|online|"
            r"tech|store|ai|sg|my|au|in|us|eu|fr|it|nl|es|jp|cn|br|ca|ch|pl|se|no|fi|be|at|cz|"
            r"tk|ua|kz|by|tr|ir|gg|to)\b(?::\d{1,5})?(?:/[^\s<>\"]*)?)",
            re.IGNORECASE,
        ),
    ),
    ("bot_command", re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#(?=\w*[^\W\d_])\w{1,256}")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w])")),
]
_TRAILING_URL_PUNCT = ".,:;!?'\")]}"


def detect_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram finds by itself: bot commands, URLs, e-mails, mentions, hashtags, cashtags."""
    index = Utf16Index(text)
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in _DETECTORS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if kind == "url":
                while end > start and text[end - 1] in _TRAILING_URL_PUNCT:
                    if text[end - 1] == ")" and text[start:end].count("(") >= text[start:end].count(")"):
                        break
                    end -= 1
            if any(start < s_end and s_start < end for s_start, s_end, _ in spans):
                continue
            spans.append((start, end, kind))
    entities = [
        {"offset": index.to_u16(start), "length": index.to_u16(end) - index.to_u16(start), "type": kind}
        for start, end, kind in spans
        if end > start
    ]
    return sort_entities(entities)


def merge_detected(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add auto-detected entities that do not overlap explicit non-splittable ones."""
    blocked = [(e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in _NON_SPLITTABLE]
    result = list(entities)
    for found in detect_entities(text):
        start, end = found["offset"], found["offset"] + found["length"]
        if any(start < b_end and b_start < end for b_start, b_end in blocked):
            continue
        result.append(found)
    return _normalise_order(result)


# ------------------------------------------------------------------------------------------ trimming

_TRIM_CHARS = " \t\r\n\u00a0\u200b\u2028\u2029"


def trim_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip leading/trailing whitespace like Telegram, shifting and clipping entities."""
    left = len(text) - len(text.lstrip(_TRIM_CHARS))
    stripped = text.strip(_TRIM_CHARS)
    if left == 0 and len(stripped) == len(text):
        return text, entities
    index = Utf16Index(text)
    u16_left = index.to_u16(left)
    u16_right = index.to_u16(left + len(stripped))
    result = []
    for entity in entities:
        start = max(entity["offset"], u16_left)
        end = min(entity["offset"] + entity["length"], u16_right)
        if end <= start:
            continue
        result.append({**entity, "offset": start - u16_left, "length": end - start})
    return stripped, result


# --------------------------------------------------------------------------- explicit entity lists


def parse_entity_list(value: Any, text: str) -> list[dict[str, Any]]:
    """Validate an ``entities``/``caption_entities`` parameter, like the Bot API."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("can't parse entities: expected an Array")
    length = utf16_len(text)
    result: list[dict[str, Any]] = []
    for raw in value:
        if not isinstance(raw, dict):
            raise bad_request("can't parse MessageEntity: expected an Object")
        kind = raw.get("type")
        if not isinstance(kind, str) or not kind:
            raise bad_request("can't parse MessageEntity: Type is not specified")
        if kind not in ENTITY_TYPES:
            raise bad_request("can't parse MessageEntity: Unsupported type specified")
        try:
            offset = int(raw.get("offset"))  # type: ignore[arg-type]
            size = int(raw.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise bad_request('can\'t parse MessageEntity: Field "offset" must be of type Number') from None
        if kind in ("mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number"):
            continue  # re-detected by Telegram itself
        if offset < 0 or size <= 0 or offset >= length:
            continue
        size = min(size, length - offset)
        entity: dict[str, Any] = {"offset": offset, "length": size, "type": kind}
        if kind == "text_link":
            url = raw.get("url")
            if not isinstance(url, str):
                raise bad_request("can't parse MessageEntity: Can't find field \"url\"")
            checked = check_link(url)
            if checked is None:
                continue
            entity["url"] = checked
        elif kind == "text_mention":
            user = raw.get("user")
            if not isinstance(user, dict) or "id" not in user:
                raise bad_request("can't parse MessageEntity: Can't find field \"user\"")
            entity["user"] = user
        elif kind == "pre" and raw.get("language"):
            entity["language"] = str(raw["language"])
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = str(raw.get("custom_emoji_id", ""))
        result.append(entity)
    return _normalise_order(result)


# ------------------------------------------------------------------------------------- the pipeline


def format_text(
    text: str,
    parse_mode: str | None,
    entities_param: Any = None,
    *,
    is_caption: bool = False,
    allow_empty: bool = False,
    known_users: dict[int, dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Text + entities as Telegram stores them for a message sent by a bot.

    Raises ApiError with the Bot API's texts ("message text is empty", "can't parse entities: ...").
    """
    mode = (parse_mode or "").strip().lower()
    if text and mode and mode != "none":
        try:
            if mode == "html":
                text, entities = parse_html(text, known_users=known_users)
            elif mode == "markdownv2":
                text, entities = parse_markdown_v2(text)
            elif mode == "markdown":
                text, entities = parse_markdown(text)
            else:
                raise bad_request("unsupported parse_mode")
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    else:
        entities = parse_entity_list(entities_param, text)
    text, entities = trim_text(text, entities)
    limit = MAX_CAPTION_LENGTH if is_caption else MAX_TEXT_LENGTH
    if not text and not allow_empty:
        raise bad_request("message text is empty")
    if utf16_len(text) > limit:
        raise bad_request("message caption is too long" if is_caption else "message is too long")
    return text, merge_detected(text, entities)


def user_text(text: str) -> tuple[str, list[dict[str, Any]]]:
    """What a Telegram client sends for typed text: trimmed, with detected entities."""
    text, _ = trim_text(text, [])
    return text, detect_entities(text)


# ------------------------------------------------------------------------------------- HTML rendering

_SIMPLE_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "spoiler": "tg-spoiler",
    "code": "code",
    "blockquote": "blockquote",
}


def _open_tag(entity: dict[str, Any]) -> tuple[str, str] | None:
    kind = entity["type"]
    if kind in _SIMPLE_TAGS:
        tag = _SIMPLE_TAGS[kind]
        return f"<{tag}>", f"</{tag}>"
    if kind == "expandable_blockquote":
        return "<blockquote expandable>", "</blockquote>"
    if kind == "pre":
        if entity.get("language"):
            lang = html.escape(entity["language"], quote=True)
            return f'<pre><code class="language-{lang}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "text_link":
        return f'<a href="{html.escape(entity["url"], quote=True)}">', "</a>"
    if kind == "text_mention":
        return f'<a href="tg://user?id={entity["user"]["id"]}">', "</a>"
    if kind == "custom_emoji":
        return f'<tg-emoji emoji-id="{html.escape(str(entity.get("custom_emoji_id", "")))}">', "</tg-emoji>"
    return None


def entities_to_html(text: str, entities: Iterable[dict[str, Any]] | None) -> str:
    """Render text with entities as Telegram-compatible HTML (the inverse of :func:`parse_html`)."""
    index = Utf16Index(text)
    opens: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for number, entity in enumerate(sort_entities(list(entities or []))):
        if _open_tag(entity) is None:
            continue
        start = index.to_py(entity["offset"])
        end = index.to_py(entity["offset"] + entity["length"])
        if end <= start:
            continue
        opens.setdefault(start, []).append((end, {**entity, "_n": number}))
    out: list[str] = []
    stack: list[tuple[int, dict[str, Any]]] = []  # (end, entity)

    def close_until(position: int) -> None:
        # close everything ending at `position`, re-opening entities that continue past it
        while any(end == position for end, _ in stack):
            reopen = []
            while stack:
                end, entity = stack.pop()
                out.append(_open_tag(entity)[1])  # type: ignore[index]
                if end == position:
                    break
                reopen.append((end, entity))
            for end, entity in reversed(reopen):
                out.append(_open_tag(entity)[0])  # type: ignore[index]
                stack.append((end, entity))

    for position, ch in enumerate(text):
        close_until(position)
        for end, entity in sorted(opens.get(position, []), key=lambda item: -item[0]):
            out.append(_open_tag(entity)[0])  # type: ignore[index]
            stack.append((end, entity))
        out.append(html.escape(ch, quote=False))
    close_until(len(text))
    while stack:
        out.append(_open_tag(stack.pop()[1])[1])  # type: ignore[index]
    return "".join(out)


__all__ = [
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "ApiError",
    "EntityParseError",
    "Utf16Index",
    "check_link",
    "detect_entities",
    "entities_to_html",
    "format_text",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "trim_text",
    "user_text",
    "utf16_len",
]
