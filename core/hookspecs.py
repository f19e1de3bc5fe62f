"""The hooks a Kling Preflight plugin may implement.

A plugin is a module (or object) with functions marked ``@hookimpl``::

    from plugins.api import hookimpl   # a plugin's one import from the app (see plugins/api.py)

    @hookimpl
    def register_providers(register):
        register(MyProvider)

Third-party plugins are found through the entry-point group ``kling_preflight``::

    [project.entry-points.kling_preflight]
    my_provider = "my_package.my_module"
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "kling_preflight"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_providers(register: Callable[[type], None]) -> None:
    """Register recognition providers.

    :param register: call ``register(ProviderClass)`` once for each provider class the
        plugin offers. The class must subclass :class:`core.providers.Provider` and have a
        unique ``id``; a class that does not is skipped and named in
        ``kling-preflight providers``.
    """
