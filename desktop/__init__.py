"""Kling Preflight's desktop app (PySide6). Qt lives here and only here; the engine is in ``core``."""
