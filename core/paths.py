"""Where the app keeps its files.

Everything lives under one folder: the platform's user data folder by default
(``~/.local/share/kling-preflight`` on Linux, ``~/Library/Application Support/kling-preflight``
on macOS, ``%LOCALAPPDATA%\\kling-preflight`` on Windows), or ``$KLING_PREFLIGHT_HOME`` when
set (tests and portable installs use it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import platformdirs

APP_NAME = "kling-preflight"
HOME_ENV = "KLING_PREFLIGHT_HOME"


@dataclass(frozen=True)
class AppPaths:
    home: Path

    @property
    def database(self) -> Path:
        return self.home / "results.db"

    @property
    def settings(self) -> Path:
        return self.home / "settings.json"

    @property
    def crops(self) -> Path:
        """Face crops made by the offline provider, one folder per image hash prefix."""
        return self.home / "crops"

    @property
    def thumbnails(self) -> Path:
        return self.home / "thumbnails"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def ensure(self) -> "AppPaths":
        for folder in (self.home, self.crops, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def app_paths(environ: Mapping[str, str] | None = None) -> AppPaths:
    env = os.environ if environ is None else environ
    override = env.get(HOME_ENV)
    home = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return AppPaths(home)
