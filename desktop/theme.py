"""Light, Dark or System colours, chosen in View → Theme.

"System" is what Qt gives: the desktop's palette, which follows a light/dark switch where
the platform tells Qt about it. A plain X11 session (no desktop theme, no portal) tells Qt
nothing and is always light, so Light and Dark set a palette of their own, on the Fusion
style, which draws every control from the palette (the platform styles may not).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")
THEME_LABELS = {"system": "&System", "light": "&Light", "dark": "&Dark"}

_DARK = {
    QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#262626",
    QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#333333",
    QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d6cc0",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.PlaceholderText: "#9a9a9a",
    QPalette.ColorRole.Mid: "#4a4a4a", QPalette.ColorRole.ToolTipBase: "#333333",
    QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.Link: "#8ab4f8",
    QPalette.ColorRole.BrightText: "#ffffff", QPalette.ColorRole.Light: "#404040",
    QPalette.ColorRole.Midlight: "#383838", QPalette.ColorRole.Dark: "#1a1a1a", QPalette.ColorRole.Shadow: "#000000",
}  # fmt: skip


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette


class ThemeSwitcher:
    """Applies a theme to ``app``, remembering the system's style and palette to go back to."""

    def __init__(self, app: QApplication) -> None:
        self._app = app
        self._system_style = app.style().name()
        self._system_palette = QPalette(app.palette())
        self.current = "system"

    def apply(self, theme: str) -> None:
        """:param theme: one of :data:`THEMES`; anything else counts as ``system``."""
        theme = theme if theme in THEMES else "system"
        if theme == "system":
            self._app.setStyle(self._system_style)
            self._app.setPalette(self._system_palette)
        else:
            self._app.setStyle("Fusion")
            self._app.setPalette(dark_palette() if theme == "dark" else self._app.style().standardPalette())
        self.current = theme
