"""Writing a file so that a reader never sees half of it: the one way the app does it.

The data goes to a temporary file beside the target (``os.replace`` is atomic only within
one file system), which is renamed over the target once complete. If anything fails, or
the caller's block raises, the temporary file is removed and the old target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    binary: bool = False,
    encoding: str = "utf-8",
    newline: str | None = None,
    private: bool = False,
    durable: bool = True,
) -> Iterator[IO]:
    """Open a temporary file to write; on a clean exit it replaces ``path``.

    :param path: the file to write; its folder must exist.
    :param binary: open in binary mode; otherwise text in ``encoding`` with ``newline``.
    :param private: readable by the owner only (0600). Otherwise the file gets the
        permissions any new file of the user's gets (0666 less the umask). Not
        ``tempfile.mkstemp``: its files are always 0600, and the rename would keep that.
    :param durable: flush to the disk before the rename, so a power cut leaves the old
        file or the new one. Caches that can be made again may skip it.
    :yields: the open file.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600 if private else 0o666)
    try:
        with open(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding, "newline": newline})) as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
