"""Everything a provider plugin needs, in one import: ``from plugins.api import ...``.

This module is the public surface for provider authors (see "Writing a provider" in the
README, and the example package under ``examples/``). What it names keeps its meaning
between releases; anything a plugin imports from ``core`` directly may change without
notice. It sits in ``plugins`` because it is the plugins' side of the contract: ``core``
never imports it, and the built-in providers beside it may use it like any other plugin.

- :data:`hookimpl` marks the plugin's ``register_providers(register)`` function.
- :class:`Provider` is the base class; :class:`HttpProvider` the base for a provider
  reached over HTTP(S) with a key (it builds a capped, key-scrubbing :class:`HttpClient`).
- :class:`ProviderConfig` is what an instance is given (settings, key, data folder);
  :class:`SettingSpec` declares a setting; :class:`CheckContext` carries the cancel flag and
  the :class:`Memo` into each ``check``.
- :class:`CheckResult` and :class:`Face` are what ``check`` returns;
  :class:`Constraints`, :class:`ProbedImage` and :class:`Availability` describe the input
  rules, the image and whether the provider can run.
- The error classes say what the runner should do next (see each class).
"""

from __future__ import annotations

from core.errors import (
    Cancelled,
    CreatedMaybe,
    ImageRejected,
    NotProcessed,
    OutcomeUnknown,
    ProtocolError,
    ProviderError,
    ProviderStopped,
    RateLimited,
)
from core.hookspecs import hookimpl
from core.http import HttpClient, HttpProvider, Reply, say
from core.models import Availability, CheckResult, Constraints, Face, ProbedImage
from core.providers import CheckContext, DictMemo, Memo, Provider, ProviderConfig, SettingSpec

__all__ = [
    "Availability",
    "Cancelled",
    "CreatedMaybe",
    "CheckContext",
    "CheckResult",
    "Constraints",
    "DictMemo",
    "Face",
    "HttpClient",
    "HttpProvider",
    "ImageRejected",
    "Memo",
    "NotProcessed",
    "OutcomeUnknown",
    "ProbedImage",
    "ProtocolError",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderStopped",
    "RateLimited",
    "Reply",
    "SettingSpec",
    "hookimpl",
    "say",
]
