"""The user's settings: a small JSON file at :attr:`core.paths.AppPaths.settings`.

Keys are not settings and never reach this file (they live in :mod:`core.secrets`). A file
that cannot be read back is set aside as ``settings.json.broken`` and the defaults are used:
a bad settings file must never stop the app from starting.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .atomic_write import atomic_write
from .errors import SaysSentence
from .http import validate_base_url
from .paths import AppPaths
from .providers import Provider, SettingSpec
from .quality import Thresholds, thresholds_from

MAX_RECENT_FOLDERS = 10
CONCURRENCY_RANGE = (1, 32)
SETTINGS_VERSION = 1

log = logging.getLogger(__name__)

# A setting whose name holds one of these words would be a key kept in a plain file.
_KEY_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "authorization", "bearer", "credential", "credentials"}
)


class SettingsError(SaysSentence, ValueError):
    """A saved setting of a provider is not valid; the message names both."""

    def __init__(self, message: str, *, provider_id: str, setting: str) -> None:
        super().__init__(message)
        self.provider_id = provider_id
        self.setting = setting


def refuse_key_like_name(name: str) -> None:
    """Refuse a setting name that would hold a key.

    :param name: the setting's name, e.g. ``base_url``.
    :raises ValueError: the name looks like a key ("api_key", "token", "secret", ...).
    """
    words = name.strip().lower().replace("-", "_").split("_")
    if _KEY_WORDS.intersection(words):
        raise ValueError(
            f"{name!r} looks like a key, and keys are not kept in settings: "
            "use `kling-preflight keys set <provider>` or the provider's environment variable."
        )


@dataclass(frozen=True)
class AppSettings:
    """Everything the user chose, except keys (those live in the keychain).

    Immutable: the ``with_*`` methods return a new instance.
    """

    #: Per provider id, the values the user set (only those; defaults come from the spec).
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_provider: str | None = None
    #: Most recent first, at most :data:`MAX_RECENT_FOLDERS`, no duplicates.
    recent_folders: tuple[str, ...] = ()
    #: Retry calls whose outcome is unknown even where a retry may be billed.
    retry_ambiguous: bool = False
    #: Decode every file to find corrupt or truncated ones, not just read its header.
    deep_check: bool = True
    #: The quality thresholds the user changed (names of :data:`core.quality.SETTINGS`),
    #: for every provider alike.
    quality: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only views, so a settings object handed to another thread cannot change under it.
        frozen = {pid: MappingProxyType(dict(values)) for pid, values in self.providers.items()}
        object.__setattr__(self, "providers", MappingProxyType(frozen))
        object.__setattr__(self, "recent_folders", tuple(self.recent_folders))
        object.__setattr__(self, "quality", MappingProxyType(dict(self.quality)))

    def quality_thresholds(self) -> Thresholds:
        """:returns: when a quality warning applies, with the user's changes."""
        return thresholds_from(self.quality)

    def with_quality_values(self, values: Mapping[str, Any]) -> "AppSettings":
        """:returns: a copy with these quality thresholds set (the others kept).

        :raises ValueError: an unknown name or a value that is not a number.
        """
        merged = {**self.quality, **values}
        thresholds_from(merged)
        return replace(self, quality=merged)

    def with_provider_value(self, provider_id: str, name: str, value: Any) -> "AppSettings":
        """:returns: a copy with one provider setting set.

        :raises ValueError: the name looks like a key.
        """
        return self.with_provider_values(provider_id, {name: value})

    def with_provider_values(self, provider_id: str, values: Mapping[str, Any]) -> "AppSettings":
        """:returns: a copy with these settings of one provider set (the others kept).

        :raises ValueError: a name looks like a key.
        """
        if not values:
            return self
        for name in values:
            refuse_key_like_name(name)
        providers = {pid: dict(saved) for pid, saved in self.providers.items()}
        providers.setdefault(provider_id, {}).update(values)
        return replace(self, providers=providers)

    def with_recent_folder(self, path: str | os.PathLike[str]) -> "AppSettings":
        """:returns: a copy with ``path`` first among the recent folders."""
        folder = str(Path(path))
        rest = tuple(f for f in self.recent_folders if f != folder)
        return replace(self, recent_folders=((folder,) + rest)[:MAX_RECENT_FOLDERS])

    def with_default_provider(self, provider_id: str | None) -> "AppSettings":
        """:returns: a copy whose default provider is ``provider_id`` (None: no default)."""
        return replace(self, default_provider=provider_id)


def load_settings(paths: AppPaths) -> AppSettings:
    """Read the settings file; never fails.

    :param paths: the app's paths.
    :returns: the saved settings, or the defaults when there is no file or it cannot be
        read. A file that is not valid settings is renamed ``settings.json.broken``.
    """
    path = paths.settings
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return AppSettings()
    except OSError as exc:
        log.warning("The settings in %s could not be read (%s); using the defaults.", path, exc)
        return AppSettings()
    try:
        # utf-8-sig: Notepad saves a hand-edited file with a byte order mark.
        return _settings_from_json(json.loads(content.decode("utf-8-sig")))
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        broken = path.with_name(path.name + ".broken")
        try:
            os.replace(path, broken)
        except OSError as move_error:
            log.warning("The settings in %s are broken (%s) and could not be set aside (%s); using the defaults.",
                        path, exc, move_error)
        else:
            log.warning("The settings in %s are broken (%s); they were kept as %s and the defaults are used.",
                        path, exc, broken)
        return AppSettings()


def save_settings(paths: AppPaths, settings: AppSettings) -> None:
    """Write the settings file atomically: a reader sees the old file or the new one, whole.

    :param paths: the app's paths.
    :param settings: what to save.
    :raises ValueError: a provider setting's name looks like a key; nothing was written.
    :raises TypeError: a value cannot be written as JSON; nothing was written.
    :raises OSError: the file could not be written; the old one is untouched.
    """
    for values in settings.providers.values():
        for name in values:
            refuse_key_like_name(name)
    text = json.dumps(_settings_to_json(settings), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = paths.settings
    target.parent.mkdir(parents=True, exist_ok=True)
    # Private, as it has always been: it may hold an account's email.
    with atomic_write(target, private=True) as out:
        out.write(text)


def resolve_provider_settings(settings: AppSettings, provider_cls: type[Provider]) -> dict[str, Any]:
    """A provider's effective settings: its spec's defaults overlaid with the saved values.

    Values are converted to each setting's kind and checked: ``concurrency`` within 1..32,
    any ``*timeout*`` above zero, ``base_url`` by :func:`core.http.validate_base_url`. Saved
    values for names the spec does not know are ignored.

    :param settings: the user's settings.
    :param provider_cls: the provider class, for its ``id`` and ``settings_spec``.
    :returns: one value per setting in the spec.
    :raises SettingsError: a value is not valid; the message names the provider and setting.
    """
    saved = settings.providers.get(provider_cls.id, {})
    resolved: dict[str, Any] = {}
    for spec in provider_cls.settings_spec:
        value = saved.get(spec.name, spec.default)
        try:
            resolved[spec.name] = None if value is None else _checked(spec, _converted(spec, value))
        except ValueError as exc:
            raise SettingsError(f"{provider_cls.id} {spec.name}: {exc}", provider_id=provider_cls.id,
                                setting=spec.name) from exc
    return resolved


def parse_setting_assignment(text: str) -> tuple[str, str]:
    """Split a command line's ``--set name=value`` into its name and value.

    :param text: e.g. ``"base_url=https://example.test"``; the value may itself hold ``=``.
    :returns: the name (stripped) and the value (as given).
    :raises ValueError: there is no ``=`` or no name, or the name looks like a key.
    """
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise ValueError(f"{text!r} is not name=value (for example base_url=https://api.cometapi.com).")
    refuse_key_like_name(name)
    return name, value


def _converted(spec: SettingSpec, value: Any) -> Any:
    if spec.kind is int:
        return _as_int(value)
    if spec.kind is float:
        return _as_float(value)
    if spec.kind is str:
        if isinstance(value, (dict, list, bool)):
            raise ValueError(f"{value!r} is not text.")
        return str(value).strip()
    raise ValueError(f"settings of kind {spec.kind.__name__} are not supported.")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):  # bool is an int subclass; True is not a count
        raise ValueError(f"{value!r} is not a whole number.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a whole number.")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number.")
    if isinstance(value, (int, float, str)):
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise ValueError(f"{value!r} is not a number.")


def _checked(spec: SettingSpec, value: Any) -> Any:
    low, high = CONCURRENCY_RANGE
    if spec.name == "concurrency" and not low <= value <= high:
        raise ValueError(f"{value} is outside {low} to {high}.")
    if "timeout" in spec.name and value <= 0:
        raise ValueError(f"a timeout must be more than 0 seconds, not {value}.")
    if spec.name == "base_url":
        return validate_base_url(value)
    return value


def _settings_to_json(settings: AppSettings) -> dict[str, Any]:
    return {
        "version": SETTINGS_VERSION,
        "providers": {pid: dict(values) for pid, values in settings.providers.items()},
        "default_provider": settings.default_provider,
        "recent_folders": list(settings.recent_folders),
        "retry_ambiguous": settings.retry_ambiguous,
        "deep_check": settings.deep_check,
        "quality": dict(settings.quality),
    }


def _settings_from_json(data: Any) -> AppSettings:
    """Build settings from parsed JSON; unknown top-level names are ignored (a newer version's).

    :raises ValueError: the data is not settings.
    """
    if not isinstance(data, dict):
        raise ValueError("the file does not hold a JSON object")
    defaults = AppSettings()
    providers = data.get("providers", {})
    if not isinstance(providers, dict) or not all(isinstance(v, dict) for v in providers.values()):
        raise ValueError("'providers' is not an object of objects")
    for pid, values in providers.items():
        for name in list(values):
            try:
                refuse_key_like_name(name)
            except ValueError:
                # Hand-edited in: leave it out so it is never written back.
                log.warning("The settings file holds %s for %s, which looks like a key; it is ignored.", name, pid)
                del values[name]
    default_provider = data.get("default_provider", defaults.default_provider)
    if default_provider is not None and not isinstance(default_provider, str):
        raise ValueError("'default_provider' is not text")
    recent = data.get("recent_folders", [])
    if not isinstance(recent, list) or not all(isinstance(f, str) for f in recent):
        raise ValueError("'recent_folders' is not a list of text")
    flags = {name: data.get(name, getattr(defaults, name)) for name in ("retry_ambiguous", "deep_check")}
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"{name!r} is not true or false")
    unique_recent = tuple(dict.fromkeys(recent))[:MAX_RECENT_FOLDERS]
    quality = data.get("quality", {})
    if not isinstance(quality, dict):
        raise ValueError("'quality' is not an object")
    for name, value in list(quality.items()):
        try:
            thresholds_from({name: value})
        except ValueError as exc:  # hand-edited: this one value is left out, not the whole file
            log.warning("The settings file's quality setting is ignored: %s", exc)
            del quality[name]
    return AppSettings(providers=providers, default_provider=default_provider, recent_folders=unique_recent,
                       quality=quality, **flags)
