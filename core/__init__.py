"""Kling Preflight's engine: scan, validate, check, store, export. Never imports Qt."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kling-preflight")
except PackageNotFoundError:  # running from a source tree or a frozen app without metadata
    __version__ = "0.1.0"
