"""Small records the store, worklist and export tests build their databases from."""

from core.models import ProbedImage, Problem


def sha(n: int) -> str:
    """A made-up content hash, distinct for each ``n``."""
    return f"{n:064x}"


def probe(path, digest, *, size=1000, mtime_ns=1, problems=(), fmt="JPEG", width=800, height=600) -> ProbedImage:
    return ProbedImage(path, size, mtime_ns, digest, fmt, width, height, tuple(problems))


def unreadable(path, *, size=10, mtime_ns=1) -> ProbedImage:
    return ProbedImage(path, size, mtime_ns, None, None, None, None, (Problem("unreadable", "Permission denied."),))
