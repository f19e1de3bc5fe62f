"""Everything a front end needs to run batches: paths, settings, keys, providers.

The command line and the desktop app each build one :class:`AppContext` at start-up and
pass it down; nothing here is global, so tests build their own with a temporary home and an
in-memory keyring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from .redact import Redactor
from .models import Availability
from .paths import AppPaths, app_paths
from .plugins import ProviderRegistry
from .providers import Provider, ProviderConfig
from .secrets import KeyStore
from .settings import AppSettings, load_settings, resolve_provider_settings, save_settings

DEFAULT_PROVIDER = "local"


@dataclass(frozen=True)
class ProviderState:
    """One line of ``kling-preflight providers``: what a provider is and whether it can run."""

    id: str
    label: str
    origin: str
    remote: bool
    cost_note: str
    availability: Availability
    key_source: str  # "keychain" | "environment" | "none" | "not needed"


class AppContext:
    def __init__(
        self,
        paths: AppPaths | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        keystore: KeyStore | None = None,
        registry: ProviderRegistry | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.paths = (paths or app_paths(self.environ)).ensure()
        self.redactor = redactor or Redactor()
        self._keystore = keystore
        self._registry = registry
        self.settings: AppSettings = load_settings(self.paths)

    @property
    def registry(self) -> ProviderRegistry:
        """The providers, loaded on first use: by then the front end has set up logging, so
        a broken plugin's traceback goes to the log file, not onto the terminal."""
        if self._registry is None:
            self._registry = ProviderRegistry()
        return self._registry

    @property
    def keystore(self) -> KeyStore:
        """The key store, opened on first use: finding the system's keychain takes tens of
        milliseconds, and most commands (an offline scan, an export) never read a key."""
        if self._keystore is None:
            self._keystore = KeyStore(environ=self.environ, redactor=self.redactor)
        return self._keystore

    def save_settings(self, settings: AppSettings) -> None:
        save_settings(self.paths, settings)
        self.settings = settings

    def provider_config(self, provider_id: str, overrides: Mapping[str, Any] | None = None) -> ProviderConfig:
        """Settings (saved values over defaults, then ``overrides``), the key, the data folder.

        :raises UnknownProviderError: unknown provider.
        :raises core.settings.SettingsError: a saved or overriding value is invalid.
        """
        cls = self.registry.get(provider_id)
        settings = self.settings.with_provider_values(provider_id, overrides) if overrides else self.settings
        resolved = resolve_provider_settings(settings, cls)
        lookup = self.keystore.get(provider_id, cls.key_env) if cls.key_env else None
        data_dir = self.paths.crops if provider_id == "local" else self.paths.home / "providers" / provider_id
        return ProviderConfig(
            settings=resolved,
            key=lookup.key if lookup else None,
            key_source=lookup.source if lookup else "not needed",
            data_dir=data_dir,
        )

    def create_provider(self, provider_id: str, overrides: Mapping[str, Any] | None = None) -> Provider:
        cls = self.registry.get(provider_id)
        config = self.provider_config(provider_id, overrides)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(config)

    def states(self) -> list[ProviderState]:
        """Every provider with its state; a provider whose settings are broken is
        reported unavailable with the reason, never raised."""
        out = []
        for provider_id, cls in sorted(self.registry.providers.items(), key=lambda kv: (kv[1].remote, kv[0])):
            try:
                provider = cls(self.provider_config(provider_id))
                try:
                    availability = provider.availability()
                    key_source = provider.config.key_source
                finally:
                    provider.close()  # made only to ask: its HTTP session is not kept
            except Exception as exc:  # broken settings or a provider bug: show it, don't crash
                availability = Availability("unavailable", str(exc))
                key_source = "none"
            out.append(
                ProviderState(
                    id=provider_id,
                    label=cls.label,
                    origin=self.registry.origin(provider_id),
                    remote=cls.remote,
                    cost_note=cls.cost_note,
                    availability=availability,
                    key_source=key_source,
                )
            )
        return out

    def default_provider_id(self) -> str:
        """The user's chosen default, else the offline provider: a fresh install never
        spends money by default."""
        chosen = self.settings.default_provider
        if chosen and chosen in self.registry.providers:
            return chosen
        return DEFAULT_PROVIDER
