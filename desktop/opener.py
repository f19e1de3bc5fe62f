"""Opening files and folders with the system's apps, and saying so when nothing can.

``QDesktopServices.openUrl`` returns False when no app is set for a file type (a plain
Linux session without a desktop, a .heic on an old system); the user must hear that
instead of clicking and waiting for nothing.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices


def open_path(path: str | os.PathLike) -> str:
    """Open ``path`` (a file or a folder) with the system's default app.

    :returns: "" when it opened, else a sentence saying why not.
    """
    path = os.fspath(path)
    if QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
        return ""
    if not os.path.exists(path):
        return f"{path} is no longer there."
    kind = "folder" if os.path.isdir(path) else "file"
    return f"Nothing on this computer is set to open the {kind} {path}. Show it in its folder, or set a default app for it."
