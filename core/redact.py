"""Blanking secrets out of text: the one redactor of the app.

Used by the log handlers (through :class:`Redactor`, which knows every key this process has
seen), by the bug report, and by the HTTP client on every answer it hands back (through
:func:`redact` with the client's own key).
"""

from __future__ import annotations

import re
import threading
from typing import Iterable

REDACTED = "[redacted]"

# Shorter strings would blank out ordinary words all over the log.
_MIN_SECRET_LENGTH = 4
# "Authorization: Bearer abc", "'Authorization': 'Bearer abc'", "authorization=abc": the value
# runs to the end of the line or the closing quote, less a sentence's closing full stop.
_AUTHORIZATION = re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n]+?(?=[.,;]?\s*(?:['"\r\n]|$))""")
# A bearer token runs to the next space, quote or bracket, less a full stop at its end: wider
# than RFC 6750's token characters, because a server may echo a key that is not a valid token.
_BEARER = re.compile(r"""(?i)\b(bearer\s+)[^\s"',;()\[\]]*[^\s"',;()\[\].]""")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide each of ``secrets``, every bearer token and every Authorization value in ``text``.

    :param text: any text about to be written somewhere (a log, a message, the database).
    :param secrets: keys to hide wherever they appear; empty ones are ignored.
    :returns: the text with each of them replaced by ``[redacted]``.
    """
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _AUTHORIZATION.sub(rf"\g<1>{REDACTED}", text)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


class Redactor:
    """The secrets this process knows, and a way to blank them out of any text.

    Safe to share between threads.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Remember a secret so that :meth:`redact` hides it from now on.

        :param secret: the secret; surrounding whitespace is ignored, and so is anything
            shorter than 4 characters (it would blank out ordinary words).
        """
        if not secret:
            return
        secret = secret.strip()
        if len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """Hide every known secret, bearer token and Authorization value in ``text``.

        :param text: any text about to be written somewhere.
        :returns: the text with each of them replaced by ``[redacted]``.
        """
        with self._lock:
            secrets = tuple(self._secrets)
        return redact(text, secrets)
