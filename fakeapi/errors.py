"""Bot API errors, shaped exactly like Telegram's error responses."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as ``{"ok": false, "error_code": ..., "description": ...}``.

    The HTTP status of the response equals ``error_code``, as with the real Bot API.
    """

    def __init__(
        self,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        parameters: dict[str, int] = {}
        if self.retry_after is not None:
            parameters["retry_after"] = self.retry_after
        if self.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = self.migrate_to_chat_id
        if parameters:
            body["parameters"] = parameters
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.error_code}, {self.description!r})"


def _with_prefix(prefix: str, message: str) -> str:
    """Join like the Bot API server: lower-case the first letter unless it starts an UPPER_CASE code."""
    if message.startswith(prefix):
        return message
    if len(message) >= 2 and (message[1] == "_" or message[1].isupper()):
        return f"{prefix}: {message}"
    return f"{prefix}: {message[:1].lower()}{message[1:]}"


def bad_request(message: str) -> ApiError:
    return ApiError(400, _with_prefix("Bad Request", message))


def forbidden(message: str) -> ApiError:
    return ApiError(403, _with_prefix("Forbidden", message))


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def too_many_requests(retry_after: int) -> ApiError:
    retry_after = max(1, int(retry_after))
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
