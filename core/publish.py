"""Put a new file into a folder under a free name, whole or not at all.

Used by ``fix`` and ``collect`` (core/copies.py), which must never overwrite anything and
never leave half a file behind, also when the disk fills: the bytes go to a hidden
temporary file beside the target first, are flushed to disk, and only then is the file
given its name with a hard link, which fails rather than replace a file that is there.
On a file system without hard links (FAT, some network shares) the name is reserved with
an exclusive create and the temporary file renamed over that empty reservation.

Not :func:`core.atomic_write.atomic_write`, which replaces its target: a copy must never
replace anything, and its name is only known once a free one is found.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

#: Clashing names get "-1", "-2"... before the extension; past this many, give up.
MOST_SUFFIXES = 10_000


def candidate_names(name: str) -> Iterator[str]:
    """``photo.jpg``, ``photo-1.jpg``, ``photo-2.jpg``...: the names tried, in order."""
    stem, ext = os.path.splitext(name)
    yield name
    for n in range(1, MOST_SUFFIXES):
        yield f"{stem}-{n}{ext}"


def free_name(folder: Path, name: str, taken: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The first of :func:`candidate_names` neither in ``folder`` nor in ``taken`` (for
    dry runs, which must name files as a real run would without writing them)."""
    for candidate in candidate_names(name):
        if candidate.casefold() not in taken and not os.path.lexists(folder / candidate):
            return candidate
    raise FileExistsError(errno.EEXIST, "No free name is left", str(folder / name))


def publish_new(folder: Path, name: str, fill: Callable[[BinaryIO], None]) -> Path:
    """Write a file with ``fill`` and give it the first free name of :func:`candidate_names`.

    :param folder: an existing folder.
    :param name: the wanted name.
    :param fill: writes the content to the open binary file it is given.
    :returns: the path the file now has.
    :raises OSError: nothing was left behind (the temporary file is removed).
    """
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", suffix=".tmp", delete=False)
    temp = Path(handle.name)
    try:
        with handle:
            os.chmod(temp, 0o644)  # a temporary file is private (0600); a copy is not
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        return _name_it(temp, folder, name)
    finally:
        temp.unlink(missing_ok=True)


def link_new(folder: Path, name: str, make: Callable[[Path], None]) -> Path:
    """Call ``make(target)`` (``os.link`` or ``os.symlink`` to a source) with the first free
    name; a name taken meanwhile is skipped, never replaced.

    :returns: the path made.
    """
    for candidate in candidate_names(name):
        target = folder / candidate
        try:
            make(target)
        except FileExistsError:
            continue
        return target
    raise FileExistsError(errno.EEXIST, "No free name is left", str(folder / name))


def _name_it(temp: Path, folder: Path, name: str) -> Path:
    for candidate in candidate_names(name):
        target = folder / candidate
        try:
            os.link(temp, target)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # No hard links here: reserve the name, then rename over the reservation.
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                continue
            os.replace(temp, target)
        return target
    raise FileExistsError(errno.EEXIST, "No free name is left", str(folder / name))
