"""Run one fake provider in the foreground until Ctrl-C or SIGTERM.

    python -m tests.fakes cometapi --port 8765 --latency 0.2 --key K
    python -m tests.fakes useapi --email a@example.com --email b@example.com

Prints two lines, ``<name> fake: <base URL>`` and ``key: <key>``, then one line per request
on stderr (unless --quiet).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .cometapi import FakeCometAPI
from .server import FakeServer, RecordedRequest
from .useapi import DEFAULT_ACCOUNT, FakeUseAPI


def _print_request(record: RecordedRequest) -> None:
    outcome = "dropped" if record.status is None else str(record.status)
    billed = " billed" if record.billed else ""
    print(f"{record.method} {record.path} -> {outcome}{billed}", file=sys.stderr, flush=True)


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
    args = parser.parse_args(argv)
    options = dict(
        key=args.key,
        latency=args.latency,
        max_concurrency=args.max_concurrency,
        port=args.port,
        log=None if args.quiet else _print_request,
    )
    if args.provider == "cometapi":
        if args.email:
            parser.error("--email is for useapi only")
        return FakeCometAPI(**options)
    return FakeUseAPI(accounts=tuple(args.email or (DEFAULT_ACCOUNT,)), **options)


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
