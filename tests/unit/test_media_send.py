"""Which refusals of a stored file's Telegram file id make the bot upload its stored copy instead."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import SendPhoto

from handlers.media import file_rejected


def refused(text: str) -> TelegramBadRequest:
    return TelegramBadRequest(method=SendPhoto(chat_id=1, photo="x"), message=text)


@pytest.mark.parametrize(
    "text",
    [
        "Bad Request: wrong file identifier/HTTP URL specified",  # another bot's, or dropped
        "Bad Request: wrong remote file identifier specified: wrong string length",  # malformed
        "Bad Request: wrong remote file id specified: can't unserialize it",
        "Bad Request: type of file mismatch",  # a photo sent to us as a file is a document's id
        "Bad Request: FILE_REFERENCE_EXPIRED",
        "Bad Request: wrong type of the web page content",  # an album item
    ],
)
def test_a_refused_file_id_is_replaced_by_the_stored_copy(text):
    assert file_rejected(refused(text))


@pytest.mark.parametrize(
    "text",
    [
        "Bad Request: chat not found",
        "Bad Request: message caption is too long",
        'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0',
    ],
)
def test_other_refusals_are_not_hidden_by_an_upload(text):
    assert not file_rejected(refused(text))
