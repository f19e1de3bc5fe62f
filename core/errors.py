"""What can go wrong when a provider is asked about an image, sorted by what to do next.

Provider code raises exactly one of these for every failure; the runner decides from the
class alone whether to stop the provider, record the image, wait, or retry. Messages are
sentences for the user and never contain a key.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


class SaysSentence(Exception):
    """Mixed into every error whose message is already a sentence for the user (a bad
    setting, a database that is not ours, a provider that refused). :func:`user_sentence`
    shows its message as it is; an error without this mark is either an OS or database
    error it knows how to word, or a bug."""


class ProviderError(SaysSentence):
    """Base class. ``code`` is a stable short identifier for exports and filters."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider_code: str | None = None,
        raw: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # HTTP status, when there was one
        self.provider_code = provider_code  # e.g. "1303", "invalid_request"
        self.raw = raw  # the body as received (already truncated by the caller)
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message


class ProviderStopped(ProviderError):
    """The provider itself is unusable: bad key, no balance, no subscription, wrong base
    URL, account in arrears. Stop all of its remaining work after this one call."""

    code = "provider_stopped"


class ImageRejected(ProviderError):
    """The provider refused this one image (bad image, content policy, bad request).
    Record it on the image; the batch goes on."""

    code = "rejected"


class RateLimited(ProviderError):
    """Too many requests or too many at once. The server did not process the request:
    waiting and retrying costs nothing. ``retry_after`` is the server's hint in seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotProcessed(ProviderError):
    """A transient fault where the server certainly did not process the request
    (connection refused, a gateway 503). Retrying is free."""

    code = "unavailable"


class OutcomeUnknown(ProviderError):
    """A fault after which nobody knows whether the request was processed and billed
    (read timeout, 500, 502, 504, 524, a dropped connection mid-answer). Retry only where
    the provider says retries are free or the user allowed it."""

    code = "outcome_unknown"


class CreatedMaybe(OutcomeUnknown):
    """An outcome-unknown failure of a call that creates something (a useapi upload makes an
    asset in the user's account): a retry would make a second one. It is never retried on
    its own, however free the provider's retries are; only the user's ``--retry-ambiguous``
    retries it, and ``--retry-failed`` sends it again later."""


class ProtocolError(ProviderError):
    """The provider answered something we cannot read (not JSON, missing fields, wrong
    types). Recorded on the image as a failure."""

    code = "protocol_error"


class Cancelled(Exception):
    """The user stopped the batch while this call was in flight or waiting."""


# -- sentences for errors a user can cause or fix, shared by the CLI and the desktop ---------


@dataclass(frozen=True)
class UserSentence:
    """What to tell the user about an error. ``mistake`` is True when the user can fix it
    by asking differently (a setting, a name, a file that is not ours): the CLI exits 2;
    otherwise the computer stood in the way (a full disk, a damaged database): exit 1."""

    text: str
    mistake: bool


def user_sentence(exc: BaseException) -> UserSentence | None:
    """The one place an exception becomes the sentence the CLI and the desktop show.

    :returns: the sentence, or None when ``exc`` is a bug (to be logged with its traceback
        and reported, never worded away).
    """
    if isinstance(exc, SaysSentence):
        # args[0], not str(): a KeyError subclass would come out in quotes.
        return UserSentence(str(exc.args[0]) if exc.args else str(exc), mistake=True)
    if isinstance(exc, sqlite3.DatabaseError):
        return UserSentence(database_error_sentence(exc), mistake=False)
    if isinstance(exc, OSError):
        return UserSentence(os_error_sentence(exc), mistake=False)
    return None


def database_error_sentence(exc: Exception) -> str:
    """For an ``sqlite3.DatabaseError`` that escaped the store (a damaged file, a full disk)."""
    return f"The results database could not be used: {exc}."


def os_error_sentence(exc: OSError) -> str:
    """The system's reason, and the file it concerns when known, without the errno noise."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where}."
