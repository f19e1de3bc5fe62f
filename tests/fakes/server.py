"""Shared machinery of the fake provider servers.

A :class:`FakeServer` is a real HTTP/1.1 server (keep-alive, one thread per connection) bound
to 127.0.0.1 that records every request and can be told to misbehave. Subclasses supply the
provider: its routes, its key check, its answers.

Every request goes through the same steps, in this order:

1. route: an unknown method and path gets the provider's "wrong URL" answer;
2. key: a missing or wrong key gets the provider's 401 (a wrong key is its own script: it
   consumes no queued action and draws no random fault);
3. concurrency gate: with more than ``max_concurrency`` admitted requests in flight, the
   provider's busy answer (a refused request is not in flight and consumes no action);
4. the action: the next one queued for the endpoint, else a random fault, else :class:`Succeed`.
   Actions come BEFORE validation, so a test can script any request whatever its body;
5. :class:`Succeed`: the provider's own processing (account state, body checks, the answer).

``latency`` is added to every answer, errors and dropped connections included.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import random
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, ClassVar, Iterable, Mapping, Union
from urllib.parse import parse_qsl, urlsplit

from PIL import Image
from requests.structures import CaseInsensitiveDict

#: The vendors' 10 MB: 10 × 1024 × 1024 bytes. Our own constant, so that a wrong value in
#: the code under test cannot make the fake agree with it.
TEN_MB = 10 * 1024 * 1024


# --- actions a test can script -------------------------------------------------------------


def _encode_body(body: bytes | str | Mapping | list | None) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), "application/json"


@dataclass(frozen=True)
class Respond:
    """Answer with this status, body and headers.

    ``body`` may be given as bytes (sent as is), str (text/plain), a dict or list (JSON) or
    None (empty); it is stored as bytes, and ``headers`` as a tuple of pairs, so that a
    Respond is hashable and can key a fault mix. A ``Content-Length`` header that disagrees
    with the body is sent as given (a truncated answer) and the connection is then closed.

    ``billed`` says whether the fake counts the request as processed.
    """

    status: int
    body: bytes | str | Mapping | list | None = None
    headers: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    billed: bool = False

    def __post_init__(self) -> None:
        payload, content_type = _encode_body(self.body)
        headers = dict(self.headers)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        object.__setattr__(self, "body", payload)
        object.__setattr__(self, "headers", tuple(headers.items()))

    def json(self) -> Any:
        """The body parsed as JSON (for tests comparing what they enqueued)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering.

    ``after_body=False``: right after the request headers, the body unread, with a TCP reset;
    nothing was processed. ``after_body=True``: the body is read and processed (billed), then
    the connection is closed cleanly without an answer.
    """

    after_body: bool = False


@dataclass(frozen=True)
class Succeed:
    """Process the request normally."""


@dataclass(frozen=True)
class SlowBody:
    """Send the headers at once, then the body in ten pieces spread over ``seconds``.

    ``then`` is the answer to trickle: a :class:`Respond`, or None for normal processing.
    """

    seconds: float
    then: Respond | Succeed | None = None


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (on top of ``latency``), then do ``then`` (None: :class:`Succeed`)."""

    seconds: float
    then: "Action | None" = None


Action = Union[Respond, Drop, Delay, SlowBody, Succeed]
_ACTION_TYPES = (Respond, Drop, Delay, SlowBody, Succeed)


# --- what the fake records -----------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, and what became of it.

    ``headers`` is case-insensitive. ``body`` is empty when the connection was dropped
    before the body was read. ``status`` is None when no answer was sent. ``billed`` is True
    when the fake processed the request (a success, or a fault declared as processed).
    ``endpoint`` is the provider's short name for the route, or "unknown".
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any
    status: int | None
    billed: bool
    endpoint: str
    response_body: bytes | None = None
    #: ``time.monotonic()`` when the request's headers had arrived, and when it was
    #: answered or dropped (the client's clock too: the fake runs on the same machine).
    arrived: float | None = None
    finished: float | None = None


@dataclass(frozen=True)
class EndpointCount:
    requests: int
    billed: int


@dataclass(frozen=True)
class Incoming:
    """A request whose body has been read, as a provider's processing sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any


# --- image checks shared by both fakes -----------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    format: str  # "JPEG" or "PNG"
    width: int
    height: int


class BadImage(ValueError):
    """The bytes are not an image the vendor accepts; the message says why."""


# Decoding costs milliseconds and benchmarks send the same images again and again: remember
# what each content hash decoded to (its format and size, or why it failed).
_decoded: dict[str, tuple[str, int, int] | str] = {}
_decoded_lock = threading.Lock()
_DECODED_MAX = 4096


def _decode(sha256: str, data: bytes) -> tuple[str, int, int] | str:
    with _decoded_lock:
        known = _decoded.get(sha256)
    if known is not None:
        return known
    try:
        with Image.open(io.BytesIO(data)) as im:
            # Cameras write JPEGs that Pillow names MPO; they are JPEGs to the vendors.
            fmt = "JPEG" if im.format == "MPO" else im.format
            width, height = im.size
            if fmt not in ("JPEG", "PNG"):
                outcome: tuple[str, int, int] | str = f"the image is {fmt}, not JPEG or PNG"
            else:
                if fmt == "JPEG":
                    # Decoding at 1/8 scale still reads every byte, so truncation is caught cheaply.
                    im.draft(None, (max(1, width // 8), max(1, height // 8)))
                im.load()
                outcome = (fmt, width, height)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        outcome = f"the image cannot be decoded ({exc})"
    with _decoded_lock:
        if len(_decoded) >= _DECODED_MAX:
            _decoded.clear()
        _decoded[sha256] = outcome
    return outcome


def inspect_image(
    data: bytes,
    *,
    max_bytes: int = TEN_MB,
    min_side: int = 300,
    max_ratio: Fraction | None = None,
) -> ImageFacts:
    """Check bytes the way the vendors do: JPEG or PNG, fully decodable, within limits.

    :param data: the file's bytes.
    :param max_bytes: the largest file accepted.
    :param min_side: the shortest side accepted, in pixels.
    :param max_ratio: longest side over shortest side, inclusive; None for no limit.
    :returns: the image's hash, format and size.
    :raises BadImage: with a sentence saying what is wrong.
    """
    if not data:
        raise BadImage("the image is empty")
    if len(data) > max_bytes:
        raise BadImage(f"the image is {len(data):,} bytes, more than {max_bytes:,}")
    sha256 = hashlib.sha256(data).hexdigest()
    decoded = _decode(sha256, data)
    if isinstance(decoded, str):
        raise BadImage(decoded)
    fmt, width, height = decoded
    if min(width, height) < min_side:
        raise BadImage(f"the image is {width}x{height}, under {min_side} px on a side")
    if max_ratio is not None and max(width, height) > max_ratio * min(width, height):
        raise BadImage(f"the image is {width}x{height}, beyond an aspect ratio of {float(max_ratio):g}:1")
    return ImageFacts(sha256, fmt, width, height)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when absent."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# --- the server ----------------------------------------------------------------------------


class _ServerClosing(Exception):
    """The fake is shutting down: abandon the exchange."""


class _ClientGone(Exception):
    """The client closed the connection or sent a body we cannot frame."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; Nagle would hold the body back.
    disable_nagle_algorithm = True
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the fake's own log is ``FakeServer.log``."""

    def _dispatch(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _HTTPServer(HTTPServer):
    """An HTTPServer with one tracked thread per connection, so close() can end them all."""

    request_queue_size = 128

    def __init__(self, fake: "FakeServer", port: int) -> None:
        self.fake = fake
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        self._finished: list[threading.Thread] = []
        self._thread_ids = itertools.count(1)
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for a host name; that can stall without a network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.fake.thread_prefix}-conn-{next(self._thread_ids)}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = thread
            self._finished = [t for t in self._finished if t.is_alive()]
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._connections_lock:
                thread = self._connections.pop(request, None)
                if thread is not None:
                    self._finished.append(thread)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):  # a client going away is not the fake's fault
            self.fake._note_error(exc)

    def abort_connections(self) -> list[threading.Thread]:
        """Shut every open connection so blocked reads end; return the threads to join."""
        with self._connections_lock:
            sockets = list(self._connections)
            threads = list(self._connections.values()) + self._finished
            self._finished = []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return threads


class _Exchange:
    """One request on its way through the fake: reads the body lazily, answers or drops."""

    def __init__(self, fake: "FakeServer", handler: _Handler, seq: int) -> None:
        self.fake = fake
        self.seq = seq
        self.handler = handler
        self.arrived = time.monotonic()
        url = urlsplit(handler.path)
        self.method = handler.command
        self.path = url.path
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers: CaseInsensitiveDict = CaseInsensitiveDict()
        for name, value in handler.headers.items():
            previous = self.headers.get(name)
            self.headers[name] = value if previous is None else f"{previous}, {value}"
        self.endpoint = "unknown"
        self.body = b""
        self.body_read = False
        self._json: Any = None
        self.status: int | None = None
        self.billed = False
        self.response_body: bytes | None = None
        self.committed = False

    # -- reading --

    def read_body(self) -> None:
        if self.body_read:
            return
        rfile = self.handler.rfile
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _ClientGone from None
                if size == 0:
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self._read_exactly(size))
                rfile.readline(1024)
            self.body = b"".join(parts)
        else:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise _ClientGone from None
            self.body = self._read_exactly(length)
        self.body_read = True
        if self.body:
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError):
                self._json = None

    def _read_exactly(self, size: int) -> bytes:
        data = self.handler.rfile.read(size)
        if len(data) != size:
            raise _ClientGone
        return data

    def incoming(self) -> Incoming:
        self.read_body()
        return Incoming(self.method, self.path, self.query, self.headers, self.body, self._json)

    # -- acting --

    def run(self, action: Action) -> None:
        if isinstance(action, Delay):
            self.pause(action.seconds)
            self.run(action.then if action.then is not None else Succeed())
        elif isinstance(action, Drop):
            if action.after_body:
                self.read_body()
                self.billed = True
            self.pause(self.fake.latency)
            self.drop(reset=not action.after_body)
        elif isinstance(action, SlowBody):
            answer = self.answer_for(action.then if action.then is not None else Succeed())
            self.pause(self.fake.latency)
            self.send(answer, trickle_seconds=action.seconds)
        else:
            answer = self.answer_for(action)
            self.pause(self.fake.latency)
            self.send(answer)

    def answer_for(self, action: Respond | Succeed) -> Respond:
        if isinstance(action, Respond):
            self.read_body()
            return action
        return self.fake.process(self.endpoint, self.incoming())

    def pause(self, seconds: float) -> None:
        if seconds > 0 and self.fake._closing.wait(seconds):
            raise _ServerClosing

    def drop(self, *, reset: bool) -> None:
        self.commit()
        self.handler.close_connection = True
        if reset:
            # Linger 0: close() sends a TCP reset instead of a clean end of stream.
            self.handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.handler.connection.close()

    def send(self, answer: Respond, *, trickle_seconds: float = 0.0) -> None:
        h = self.handler
        self.billed = answer.billed
        body = answer.body
        h.send_response(answer.status)
        declared = None
        for name, value in answer.headers:
            h.send_header(name, value)
            if name.lower() == "content-length":
                declared = value
        if declared is None:
            h.send_header("Content-Length", str(len(body)))
        elif declared != str(len(body)):
            h.send_header("Connection", "close")
        self.status = answer.status
        self.response_body = body
        self.commit()  # before anything reaches the client, so the log never lags an answer
        h.end_headers()
        if trickle_seconds <= 0:
            h.wfile.write(body)
            return
        piece = max(1, -(-len(body) // 10))
        for start in range(0, len(body), piece):
            self.pause(trickle_seconds / 10)
            h.wfile.write(body[start : start + piece])

    def commit(self) -> None:
        """Hand the record to the fake, once."""
        if not self.committed:
            self.committed = True
            self.fake._store(self.seq, self.record())

    def record(self) -> RecordedRequest:
        return RecordedRequest(
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body=self.body,
            json=self._json,
            status=self.status,
            billed=self.billed,
            endpoint=self.endpoint,
            response_body=self.response_body,
            arrived=self.arrived,
            finished=time.monotonic(),
        )


class FakeServer:
    """Base class of the fake providers. Use as a context manager, or start() and close().

    :param key: the one valid key; default a random ``test-...`` string.
    :param latency: seconds added to every answer; settable at any time.
    :param max_concurrency: admitted requests allowed in flight at once (None: no limit);
        beyond it the provider's busy answer is sent.
    :param port: 0 for a free port.
    :param log: called with every :class:`RecordedRequest` once it is finished.
    """

    #: Short provider name, used in thread names and by ``python -m tests.fakes``.
    name: ClassVar[str] = "fake"
    #: The endpoints actions may be queued for.
    endpoints: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        key: str | None = None,
        latency: float = 0.0,
        max_concurrency: int | None = None,
        port: int = 0,
        log: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        self.key = key or f"test-{secrets.token_hex(12)}"
        self.latency = latency
        self.max_concurrency = max_concurrency
        self.log = log
        #: Unexpected exceptions inside the fake (its own bugs); the fixtures fail on them.
        self.internal_errors: list[BaseException] = []
        self.thread_prefix = f"fake-{self.name}-{secrets.token_hex(3)}"
        self._port = port
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._clear()

    def _clear(self) -> None:
        self._queues: dict[str, deque[Action]] = {name: deque() for name in self.endpoints}
        self._records: list[tuple[int, RecordedRequest]] = []
        self._faults: tuple[random.Random, tuple[tuple[Action, float], ...], frozenset[str] | None] | None = None
        self._in_flight = 0
        self._peak = 0

    # -- life cycle --

    def start(self) -> "FakeServer":
        """Bind 127.0.0.1 and serve in a background thread.

        :returns: self.
        """
        if self._httpd is not None:
            return self
        self._closing.clear()
        self._httpd = _HTTPServer(self, self._port)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.thread_prefix}-accept", daemon=True
        )
        self._serve_thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end open connections and waits, and join every thread."""
        httpd = self._httpd
        if httpd is None:
            return
        self._closing.set()
        httpd.shutdown()
        self._serve_thread.join()
        threads = httpd.abort_connections()
        for thread in threads:
            thread.join()
        httpd.server_close()
        self._httpd = None
        self._serve_thread = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting --

    def enqueue(self, endpoint: str, *actions: Action) -> None:
        """Queue actions for the next requests to ``endpoint``, first in first out.

        :param endpoint: one of :attr:`endpoints`.
        :param actions: what to do with each of the next requests.
        :raises ValueError: unknown endpoint or something that is not an action.
        """
        self._check_endpoint(endpoint)
        for action in actions:
            if not isinstance(action, _ACTION_TYPES):
                raise ValueError(f"not an action: {action!r}")
        with self._lock:
            self._queues[endpoint].extend(actions)

    def queued(self, endpoint: str) -> int:
        """How many queued actions for ``endpoint`` are still unused."""
        self._check_endpoint(endpoint)
        with self._lock:
            return len(self._queues[endpoint])

    def set_faults(
        self,
        seed: int,
        mix: Mapping[Action, float] | Iterable[tuple[Action, float]],
        *,
        endpoints: Iterable[str] | None = None,
    ) -> None:
        """Inject random faults reproducibly, when no queued action applies.

        Each request draws once from ``random.Random(seed)``, in arrival order; the same seed
        and the same sequence of requests give the same faults. An empty mix turns faults off.

        :param seed: the random seed.
        :param mix: action → probability, e.g. ``{Respond(500, ...): 0.1, Drop(): 0.05}``;
            what is left up to 1 is normal processing.
        :param endpoints: the endpoints concerned; None for all.
        :raises ValueError: probabilities below 0 or summing above 1, or unknown endpoints.
        """
        pairs = tuple(mix.items() if isinstance(mix, Mapping) else mix)
        if any(p < 0 for _, p in pairs) or sum(p for _, p in pairs) > 1 + 1e-9:
            raise ValueError("fault probabilities must be at least 0 and sum to at most 1")
        chosen = None if endpoints is None else frozenset(endpoints)
        for name in chosen or ():
            self._check_endpoint(name)
        with self._lock:
            self._faults = (random.Random(seed), pairs, chosen) if pairs else None

    def reset(self) -> None:
        """Forget recorded requests, queued actions, random faults and the peak concurrency.

        Settings (key, latency, max_concurrency, the provider's toggles and registered
        answers) are kept.
        """
        with self._lock:
            self._clear()

    def _check_endpoint(self, endpoint: str) -> None:
        if endpoint not in self.endpoints:
            raise ValueError(f"{self.name} has no endpoint {endpoint!r}; it has {', '.join(self.endpoints)}")

    # -- observing --

    @property
    def requests(self) -> list[RecordedRequest]:
        """Finished requests in arrival order (a snapshot)."""
        with self._lock:
            return [record for _, record in sorted(self._records, key=lambda pair: pair[0])]

    def counts(self) -> dict[str, EndpointCount]:
        """Per endpoint: how many requests finished, and how many of them were billed."""
        totals: dict[str, EndpointCount] = {}
        for record in self.requests:
            seen = totals.get(record.endpoint, EndpointCount(0, 0))
            totals[record.endpoint] = EndpointCount(seen.requests + 1, seen.billed + record.billed)
        return totals

    @property
    def in_flight(self) -> int:
        """Admitted requests being handled right now."""
        with self._lock:
            return self._in_flight

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Return once no request is being handled (a stopped or killed client's last calls
        are answered or dropped); fail the test after ``timeout`` seconds."""
        pause = threading.Event()
        for _ in range(max(1, int(timeout / 0.02))):
            if self.in_flight == 0:
                return
            pause.wait(0.02)
        raise AssertionError("the fake is still answering a client that stopped")

    @property
    def peak_concurrency(self) -> int:
        """The most admitted requests ever in flight at once (since start or reset)."""
        with self._lock:
            return self._peak

    # -- what subclasses provide --

    def endpoint_for(self, method: str, path: str) -> str | None:
        """The endpoint name serving ``method path``, or None for a wrong URL."""
        raise NotImplementedError

    def auth_failure(self, endpoint: str, headers: Mapping[str, str]) -> Respond | None:
        """The answer to a missing or wrong key, or None when the key is good."""
        raise NotImplementedError

    def not_found_answer(self) -> Respond:
        raise NotImplementedError

    def busy_answer(self) -> Respond:
        raise NotImplementedError

    def process(self, endpoint: str, request: Incoming) -> Respond:
        """The provider's normal answer to a request that passed the key and the gate."""
        raise NotImplementedError

    # -- handling --

    def _handle(self, handler: _Handler) -> None:
        seq = next(self._seq)
        exchange = _Exchange(self, handler, seq)
        try:
            endpoint = self.endpoint_for(exchange.method, exchange.path)
            if endpoint is None:
                exchange.run(self.not_found_answer())
                return
            exchange.endpoint = endpoint
            refusal = self.auth_failure(endpoint, exchange.headers)
            if refusal is not None:
                exchange.run(refusal)
            elif not self._enter_gate():
                exchange.run(self.busy_answer())
            else:
                try:
                    exchange.run(self._next_action(endpoint))
                finally:
                    self._leave_gate()
        except (_ServerClosing, _ClientGone, OSError):
            handler.close_connection = True
        except Exception as exc:  # a bug in the fake: say so loudly rather than look like a 500
            self._note_error(exc)
            handler.close_connection = True
        finally:
            exchange.commit()

    def _store(self, seq: int, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append((seq, record))
        if self.log is not None:
            self.log(record)

    def _note_error(self, exc: BaseException) -> None:
        with self._lock:
            self.internal_errors.append(exc)

    def _enter_gate(self) -> bool:
        with self._lock:
            if self.max_concurrency is not None and self._in_flight >= self.max_concurrency:
                return False
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            return True

    def _leave_gate(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_action(self, endpoint: str) -> Action:
        with self._lock:
            queue = self._queues[endpoint]
            if queue:
                return queue.popleft()
            if self._faults is not None:
                rng, pairs, chosen = self._faults
                if chosen is None or endpoint in chosen:
                    draw, cumulative = rng.random(), 0.0
                    for action, probability in pairs:
                        cumulative += probability
                        if draw < cumulative:
                            return action
        return Succeed()
