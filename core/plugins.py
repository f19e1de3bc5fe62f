"""Finding providers: the built-in ones, explicitly, and third-party ones by entry point.

Built-ins are imported by module name rather than discovered, because a frozen app has no
entry-point metadata. Every plugin is loaded and asked for its providers inside its own
``try`` so one broken plugin is named and skipped instead of stopping the others.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import SaysSentence
from .providers import Provider

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
BUILTIN_PLUGINS = ("plugins.local", "plugins.cometapi", "plugins.useapi")


@dataclass(frozen=True)
class PluginProblem:
    """A plugin or provider that could not be used, and why, in words."""

    plugin: str
    message: str


class UnknownProviderError(SaysSentence, KeyError):
    """No provider has this id. A KeyError, so lookups read naturally; its own class, so a
    KeyError from a bug elsewhere is never shown to a user as "no such provider"."""


class ProviderRegistry:
    """Every provider class this installation offers, by id, plus what failed to load."""

    def __init__(
        self,
        *,
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        load_entry_points: bool = True,
        extra_plugins: Iterable[object] = (),
    ) -> None:
        self.providers: dict[str, type[Provider]] = {}
        self.problems: list[PluginProblem] = []
        self._origin: dict[str, str] = {}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        for module_name in builtins:
            self._load(module_name, lambda name=module_name: importlib.import_module(name))
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._load(f"{ep.name} ({ep.value})", ep.load)
        for plugin in extra_plugins:
            self._load(getattr(plugin, "__name__", repr(plugin)), lambda plugin=plugin: plugin)

    def _load(self, name: str, loader) -> None:
        plugin = None
        try:
            plugin = loader()
            # register() checks the hook signatures against the specs.
            self._pm.register(plugin, name=name)
            impls = [
                impl
                for impl in self._pm.hook.register_providers.get_hookimpls()
                if impl.plugin_name == name
            ]
            if not impls:
                raise TypeError("it implements no kling_preflight hook")
            # Called one plugin at a time (not through pm.hook) so a plugin that raises
            # cannot take the others down with it.
            for impl in impls:
                impl.function(register=lambda cls: self._add(name, cls))
        except Exception as exc:  # any error in third-party code: name it, skip it
            if plugin is not None and self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            log.warning("plugin %s could not be loaded: %s", name, exc, exc_info=True)
            self.problems.append(PluginProblem(name, f"{type(exc).__name__}: {exc}"))

    def _add(self, plugin: str, cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            self.problems.append(PluginProblem(plugin, f"{cls!r} is not a Provider class"))
            return
        provider_id = getattr(cls, "id", None)
        if not isinstance(provider_id, str) or not provider_id:
            self.problems.append(PluginProblem(plugin, f"{cls.__name__} has no id"))
            return
        if provider_id in self.providers:
            self.problems.append(
                PluginProblem(
                    plugin,
                    f"provider id {provider_id!r} is already taken by {self._origin[provider_id]}",
                )
            )
            return
        self.providers[provider_id] = cls
        self._origin[provider_id] = plugin

    def origin(self, provider_id: str) -> str:
        return self._origin[provider_id]

    def get(self, provider_id: str) -> type[Provider]:
        """:raises UnknownProviderError: with a sentence listing the known providers."""
        try:
            return self.providers[provider_id]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProviderError(f"There is no provider called {provider_id!r}. Known: {known}.") from None
