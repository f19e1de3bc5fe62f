"""The provider contract: what every recognition provider, built-in or third-party, is.

A provider class describes itself with class attributes (id, label, key, constraints, retry
policy, settings) and is instantiated with a :class:`ProviderConfig` once per batch. Its
``check`` is called from worker threads, concurrently, so it must keep no per-call state on
``self`` beyond thread-safe things such as a ``requests.Session``.

Failures are raised as the classes in :mod:`core.errors`; the runner owns retries, waits
and stopping, so a provider makes exactly one attempt per ``check`` call.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol

from .models import Availability, CheckResult, Constraints, ProbedImage


@dataclass(frozen=True)
class SettingSpec:
    """One user-editable setting of a provider (shown by the CLI and the desktop app)."""

    name: str
    label: str
    default: Any
    kind: type = str  # str, int or float
    help: str = ""


@dataclass(frozen=True)
class ProviderConfig:
    """What a provider instance is given: its settings, its key, and where it may write.

    ``key`` is the secret itself; it never leaves this object except into an
    ``Authorization`` header. ``repr`` hides it.
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = field(default=None, repr=False)
    key_source: str = "none"  # "keychain" | "environment" | "session" | "none"
    data_dir: Path = Path(".")

    def get(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)


class Memo(Protocol):
    """A small persistent memory a provider may use across runs, keyed by content hash.

    useapi uses it to remember each upload's URL so no image is uploaded twice. ``put`` is
    safe to call from worker threads; the runner persists it from its writer thread.
    """

    def get(self, sha256: str, kind: str) -> str | None: ...

    def put(self, sha256: str, kind: str, value: str) -> None: ...


class DictMemo:
    """An in-memory :class:`Memo` (used by ``providers --check`` and by tests)."""

    def __init__(self, initial: Mapping[tuple[str, str], str] | None = None) -> None:
        self._values: dict[tuple[str, str], str] = dict(initial or {})
        self._lock = threading.Lock()

    def get(self, sha256: str, kind: str) -> str | None:
        with self._lock:
            return self._values.get((sha256, kind))

    def put(self, sha256: str, kind: str, value: str) -> None:
        with self._lock:
            self._values[(sha256, kind)] = value


@dataclass(frozen=True)
class CheckContext:
    """Per-call help from the runner: a cancel flag to honour, a memo, and the journal.

    ``journal(image, kind)`` records, committed, that a call of ``kind`` (see
    :meth:`Provider.journal_kind`) is about to go out for ``image``, and returns once it is
    recorded; a provider calls it before such a call the runner could not foresee (useapi
    uploading again after a remembered URL stopped working). It raises
    :class:`~core.errors.Cancelled` when the batch is stopping. None outside a batch.
    """

    cancel: threading.Event
    memo: Memo
    journal: Callable[[ProbedImage, str], None] | None = None


class Provider(ABC):
    """Base class for recognition providers.

    Subclasses set the class attributes and implement :meth:`check`. They may override
    :meth:`availability`, :meth:`verify` and :meth:`close`.
    """

    #: Short stable identifier used on the command line and in the database.
    id: ClassVar[str]
    #: Human name shown in lists.
    label: ClassVar[str]
    #: Environment variable that may hold the key, or None when no key is needed.
    key_env: ClassVar[str | None] = None
    #: The input rules files must meet before they are sent.
    constraints: ClassVar[Constraints] = Constraints()
    #: True when a repeated call costs nothing. Only then does the runner honour
    #: ``max_outcome_unknown_retries`` on its own; otherwise it retries such a failure only
    #: when the user allowed it (``--retry-ambiguous``), since the retry may be billed again.
    retries_are_free: ClassVar[bool] = False
    #: Retries allowed after an outcome-unknown failure without the user's say-so, when
    #: ``retries_are_free``.
    max_outcome_unknown_retries: ClassVar[int] = 0
    #: First wait after a rate limit without Retry-After, in seconds; doubles each time.
    rate_limit_base_wait: ClassVar[float] = 1.0
    #: Whether a call leaves the machine (and may cost money); drives confirmations.
    remote: ClassVar[bool] = True
    #: What one check costs, in words, for lists and confirmations.
    cost_note: ClassVar[str] = ""
    default_concurrency: ClassVar[int] = 4
    settings_spec: ClassVar[tuple[SettingSpec, ...]] = ()
    #: Call kind (see :meth:`journal_kind`) -> the sentence an image's failed result carries
    #: when such a call was in flight as the run was killed.
    unknown_outcome_messages: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def needs_key(self) -> bool:
        return self.key_env is not None

    def availability(self) -> Availability:
        """Ready, needs a key, or unavailable (with why). Must not touch the network."""
        if self.needs_key and not self.config.key:
            return Availability(
                "needs_key",
                f"no key: run `kling-preflight keys set {self.id}` or set {self.key_env}",
            )
        return Availability("ready")

    @abstractmethod
    def check(self, image: ProbedImage, data: bytes, ctx: CheckContext) -> CheckResult:
        """Check one image whose bytes are ``data``; make exactly one attempt.

        :param image: the probed file (format, size, hash) that passed the constraints.
        :param data: the file's bytes, read once by the runner.
        :param ctx: cancel flag and memo.
        :returns: the result.
        :raises core.errors.ProviderError: a subclass saying what to do next.
        """

    def journal_kind(self, image: ProbedImage, memo: Memo) -> str | None:
        """The call a check of ``image`` will make that costs money or leaves something
        behind (a billed recognition, an upload), by the provider's name for it; None when
        it makes none. The runner journals it, committed, before the check starts, so that a
        kill cannot make it be sent again unnoticed. When the provider later stores a memo
        value of this kind for the image, that call's answer is known to be kept.
        """
        return None

    @property
    def longest_call(self) -> float:
        """Seconds one call can take before it gives up by itself: how long a stop waits
        for the calls in flight, whose answers may already be paid for."""
        return 3.0

    def set_concurrency(self, calls: int) -> None:
        """How many calls the runner will have in flight at once (sizes connection pools)."""

    def abort(self) -> None:
        """Give up the calls in flight now (a second stop), from any thread."""

    def verify(self) -> str:
        """Check the configuration with a call that costs nothing.

        :returns: a sentence saying what was verified.
        :raises core.errors.ProviderError: what is wrong, in words.
        """
        return "nothing to verify"

    def close(self) -> None:
        """Release connections and other resources at the end of a batch."""
