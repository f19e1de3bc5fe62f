"""Run one fake provider in the foreground until Ctrl-C or SIGTERM.

    python -m tests.fakes cometapi --port 8765 --latency 0.2 --key K
    python -m tests.fakes useapi --email a@example.com --email b@example.com
    python -m tests.fakes useapi --faults 7 --slow 3 --log-file requests.jsonl

Prints two lines, ``<name> fake: <base URL>`` and ``key: <key>``, then one line per request
on stderr (unless --quiet). ``--faults SEED`` serves the fault mix of ``faultmix.py``;
``--log-file`` writes one JSON line per finished request (see :func:`log_line`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import signal
import sys
import threading
from typing import Callable

from .cometapi import FakeCometAPI
from .faultmix import ENDPOINTS, fault_kind, fault_mix
from .server import FakeServer, RecordedRequest
from .useapi import DEFAULT_ACCOUNT, FakeUseAPI


def _print_request(record: RecordedRequest) -> None:
    outcome = "dropped" if record.status is None else str(record.status)
    billed = " billed" if record.billed else ""
    print(f"{record.method} {record.path} -> {outcome}{billed}", file=sys.stderr, flush=True)


def image_of(record: RecordedRequest) -> str | None:
    """The sha256 of the image a request was about, when it can be told."""
    if record.endpoint == "upload" and record.body:
        return hashlib.sha256(record.body).hexdigest()
    data = record.json if isinstance(record.json, dict) else {}
    if record.endpoint == "faces" and isinstance(data.get("imageReference"), str):
        return data["imageReference"].rsplit("/", 1)[-1].split(".")[0]
    if record.endpoint == "recognize" and isinstance(data.get("image"), str):
        try:
            return hashlib.sha256(base64.b64decode(data["image"], validate=True)).hexdigest()
        except (binascii.Error, ValueError):
            return None
    return None


def log_line(record: RecordedRequest) -> str:
    """One request as a JSON line: endpoint, status (null: dropped), billed, the image's
    sha256, which fault of the mix it got, and when it arrived and finished
    (``time.monotonic()``, the same clock as a client's on this machine)."""
    return json.dumps({
        "endpoint": record.endpoint, "status": record.status, "billed": record.billed, "image": image_of(record),
        "kind": fault_kind(record), "arrived": record.arrived, "finished": record.finished,
    })  # fmt: skip


def _file_logger(path: str) -> Callable[[RecordedRequest], None]:
    out = open(path, "a", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def write(record: RecordedRequest) -> None:
        line = log_line(record)
        with lock:
            out.write(line + "\n")

    return write


def build(argv: list[str] | None = None) -> FakeServer:
    """Make the fake the command line asks for (not started).

    :param argv: arguments without the program name; None for ``sys.argv[1:]``.
    :returns: the configured fake.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description="Run a fake provider on 127.0.0.1.")
    parser.add_argument("provider", choices=["cometapi", "useapi"])
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--key", help="the valid key (default: a random test-... key)")
    parser.add_argument("--max-concurrency", type=int, help="answer the provider's busy error above this")
    parser.add_argument("--email", action="append", help="useapi: a configured account (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="do not print each request")
    parser.add_argument("--faults", type=int, metavar="SEED", help="serve the fault mix of faultmix.py, seeded")
    parser.add_argument("--slow", type=float, default=3.0, help="seconds a slow answer of the fault mix takes")
    parser.add_argument("--log-file", help="append one JSON line per finished request to this file")
    args = parser.parse_args(argv)
    log = None if args.quiet else _print_request
    if args.log_file:
        log = _file_logger(args.log_file)
    options = dict(
        key=args.key,
        latency=args.latency,
        max_concurrency=args.max_concurrency,
        port=args.port,
        log=log,
    )
    if args.provider == "cometapi":
        if args.email:
            parser.error("--email is for useapi only")
        fake: FakeServer = FakeCometAPI(**options)
    else:
        fake = FakeUseAPI(accounts=tuple(args.email or (DEFAULT_ACCOUNT,)), **options)
    if args.faults is not None:
        fake.set_faults(args.faults, fault_mix(args.provider, slow=args.slow), endpoints=ENDPOINTS[args.provider])
    return fake


def main(argv: list[str] | None = None) -> int:
    fake = build(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with fake:
        print(f"{fake.name} fake: {fake.base_url}", flush=True)
        print(f"key: {fake.key}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
