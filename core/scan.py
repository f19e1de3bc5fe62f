"""Walk the roots a user chose and list the regular files under them.

Only names and ``stat`` are looked at here: whether a file is a photo is decided later
from its content (:mod:`core.probe`), so nothing is filtered by extension.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Callable, Iterable, Iterator

from .models import ScannedFile

#: Files operating systems and sync tools leave beside photos (compared case-insensitively).
JUNK_NAMES: frozenset[str] = frozenset(
    {
        "thumbs.db",
        "ehthumbs.db",
        "ehthumbs_vista.db",
        "desktop.ini",
        ".ds_store",
        ".localized",
        "icon\r",  # macOS custom folder icon
        "__macosx",  # the AppleDouble folder zip tools add
        "$recycle.bin",
        "system volume information",
    }
)

OnSkip = Callable[[str, str], None]

#: A folder holding this file is an output folder of ``fix`` or ``collect``: scans skip it
#: when they meet it inside a scanned folder (copies must not be scanned as new photos of
#: the same folder, again and again); named as a root, it is scanned.
OUTPUT_MARKER = ".kling-preflight-output"


def is_junk(name: str) -> bool:
    """Tell whether a file or folder name is system clutter rather than a user's file.

    :param name: a bare name, not a path.
    :returns: True for dotfiles (including ``._*`` AppleDouble files) and :data:`JUNK_NAMES`.
    """
    return name.startswith(".") or name.casefold() in JUNK_NAMES


def iter_files(
    roots: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    on_skip: OnSkip | None = None,
) -> Iterator[ScannedFile]:
    """Yield every regular, non-junk file under the roots, each real file once.

    Roots are taken as given (a junk-looking name passed explicitly is still scanned);
    junk names and dot-folders found inside folders are skipped. Entries of each folder
    come in name order and sub-folders are walked where they fall in that order, so the
    output is the same on every run. Symlinked folders are followed, but a folder already
    walked (through a link, a junction or a second root) is never walked again.

    :param roots: files and folders, as ``str`` or path-like objects.
    :param recursive: False to list only the files directly inside root folders.
    :param on_skip: called as ``on_skip(path, reason)`` for a missing root, a dangling
        symlink, a symlink loop, or a folder that cannot be read.
    :returns: an iterator of :class:`~core.models.ScannedFile` with absolute paths, as
        :func:`stored_path` writes them.
    """
    walk = _Walk(recursive, on_skip or _ignore)
    for root in roots:
        yield from walk.root(os.path.abspath(os.fspath(root)))


def _ignore(path: str, reason: str) -> None:
    """The default ``on_skip``: skipped paths are simply not listed."""


def _entry_key(st: os.stat_result, path: str) -> int:
    """st_dev and st_ino, which identify a real file or folder, packed in one int.

    One int rather than a tuple of two: a scan remembers one key per file, and this
    halves what 20,000 of them cost.
    """
    if st.st_ino == 0:
        # Windows' DirEntry.stat() leaves the inode at zero; a full stat fills it in.
        st = os.stat(path)
    return (st.st_dev << 64) | st.st_ino


def _sort_key(entry: os.DirEntry[str]) -> tuple[str, str]:
    return (entry.name.casefold(), entry.name)


def _reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, FileNotFoundError):
        return "not found"
    if error.errno == errno.ELOOP:
        return "symlink loop"
    return (error.strerror or str(error)).lower()


UNSTORABLE_NAME = "its name cannot be written as text (an unpaired surrogate): rename it to check it"

# A byte of a name that is not UTF-8 (an old archive, a Latin-1 disk) reaches Python as a
# lone surrogate U+DC80..U+DCFF (PEP 383), which neither SQLite nor a CSV file can hold.
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def stored_path(path: str) -> str:
    """``path`` as the store, the exports and the messages write it: unchanged when it is
    text (always on Windows and macOS), else each byte that is not UTF-8 as ``\\xNN``, the
    way Python and ``ls -b`` spell it. :func:`file_path` turns it back.

    Lossless but for one theoretical case: a file whose name holds the four characters
    ``\\xe9`` where a neighbour's holds the byte 0xE9 would share one row.
    """
    if _storable(path):
        return path
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in path)


def file_path(stored: str | os.PathLike[str]) -> str:
    """The path to open for a path as :func:`stored_path` wrote it."""
    stored = os.fspath(stored)
    if "\\x" not in stored or os.path.lexists(stored):
        return stored
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), stored)


def _storable(name: str) -> bool:
    """Whether a name can be written to the results database and the exports.

    A name whose bytes are not UTF-8 reaches Python with surrogate escapes, which neither
    SQLite nor a CSV file can hold.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Walk:
    """The state of one :func:`iter_files` call: what has been yielded and walked."""

    def __init__(self, recursive: bool, on_skip: OnSkip) -> None:
        self.recursive = recursive
        self.on_skip = on_skip
        self.seen_files: set[int] = set()
        self.seen_folders: set[int] = set()

    def root(self, path: str) -> Iterator[ScannedFile]:
        try:
            st = os.stat(path)
        except OSError as error:
            if isinstance(error, FileNotFoundError) and os.path.islink(path):
                self.on_skip(path, "dangling symlink")
            else:
                self.on_skip(path, _reason(error))
            return
        if not _storable(stored_path(path)):
            self.on_skip(path, UNSTORABLE_NAME)
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self.folder(path, st)
        elif stat.S_ISREG(st.st_mode):
            key = _entry_key(st, path)
            if key not in self.seen_files:
                self.seen_files.add(key)
                yield ScannedFile(stored_path(path), st.st_size, st.st_mtime_ns)
        else:
            self.on_skip(path, "not a regular file or folder")

    def folder(self, path: str, st: os.stat_result) -> Iterator[ScannedFile]:
        """Walk one folder tree depth-first, iteratively (deep trees must not recurse)."""
        key = _entry_key(st, path)
        if key in self.seen_folders:
            return
        self.seen_folders.add(key)
        # Each level: the folder's key and its remaining sorted entries.
        stack: list[tuple[int, Iterator[os.DirEntry[str]]]] = []
        entries = self.entries(path)
        if entries is None:
            return
        stack.append((key, entries))
        while stack:
            entry = next(stack[-1][1], None)
            if entry is None:
                stack.pop()
                continue
            if is_junk(entry.name):
                continue
            if not _storable(stored_path(entry.name)):
                self.on_skip(entry.path, UNSTORABLE_NAME)
                continue
            try:
                is_dir = entry.is_dir()
                if is_dir and not self.recursive:
                    continue
                entry_st = entry.stat()
                entry_key = _entry_key(entry_st, entry.path)
            except OSError as error:
                if isinstance(error, FileNotFoundError) and entry.is_symlink():
                    self.on_skip(entry.path, "dangling symlink")
                elif isinstance(error, FileNotFoundError):
                    pass  # deleted while we were looking: it is simply gone
                else:
                    self.on_skip(entry.path, _reason(error))
                continue
            if is_dir:
                if any(entry_key == level_key for level_key, _ in stack):
                    self.on_skip(entry.path, "symlink loop")
                    continue
                if entry_key in self.seen_folders:
                    continue  # already walked through another path
                if os.path.lexists(os.path.join(entry.path, OUTPUT_MARKER)):
                    continue
                self.seen_folders.add(entry_key)
                sub_entries = self.entries(entry.path)
                if sub_entries is not None:
                    stack.append((entry_key, sub_entries))
            elif entry.is_file():
                if entry_key not in self.seen_files:
                    self.seen_files.add(entry_key)
                    yield ScannedFile(stored_path(entry.path), entry_st.st_size, entry_st.st_mtime_ns)

    def entries(self, path: str) -> Iterator[os.DirEntry[str]] | None:
        """A folder's entries in name order, or None (reported) when it cannot be read."""
        try:
            with os.scandir(path) as it:
                listed = sorted(it, key=_sort_key)
        except OSError as error:
            self.on_skip(path, _reason(error))
            return None
        return iter(listed)
