"""HTTP plumbing shared by the remote providers.

One :class:`HttpClient` per provider instance: a pooled ``requests.Session`` sized to the
provider's concurrency, connect and read timeouts, the key sent as a Bearer header and never
shown. It turns what can go wrong on the wire into :mod:`core.errors` classes, reads bodies
with a size cap, and scrubs keys from every text it hands back. What a status code *means*
differs per vendor, so that classification lives in each plugin; this module only supplies
the pieces both need.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, ClassVar, Mapping
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from . import __version__
from .errors import (
    Cancelled,
    NotProcessed,
    OutcomeUnknown,
    ProtocolError,
    ProviderError,
    ProviderStopped,
    RateLimited,
)
from .models import Availability
from .providers import Provider, ProviderConfig, SettingSpec
from .redact import redact

USER_AGENT = f"kling-preflight/{__version__}"
#: No answer we expect is bigger than a few KB; a server sending more is not one of ours.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: How much of a body an exception keeps in ``raw``.
RAW_LIMIT = 4096
#: How much of a server's own message goes into a sentence for the user.
DETAIL_LIMIT = 200
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
#: Gateway statuses meaning the request never reached the service behind it (a plain 503,
#: and Cloudflare's "origin down", "origin timed out on connect", "origin unreachable").
NOT_FORWARDED_STATUSES = frozenset({503, 521, 522, 523})
#: Headers that may carry a request id, most specific first (cf-ray is what support asks for
#: when nothing else is there).
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-oneapi-request-id", "x-amzn-requestid", "cf-ray")
_CHUNK_BYTES = 64 * 1024


def validate_base_url(url: str) -> str:
    """Check a provider's base URL and normalise it.

    >>> validate_base_url("https://api.cometapi.com/")
    'https://api.cometapi.com'

    :param url: what the user set, e.g. ``https://api.cometapi.com``.
    :returns: the URL with a lower-case scheme and host and no trailing slash.
    :raises ValueError: a sentence saying what is wrong: not https (plain http is allowed
        only for this machine), a user name or password in it, a query or fragment, no host.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError(f"{text!r} is not a web address: a base URL starts with https://.")
    # Neither the credentials nor a query (which may hold a key) are echoed back.
    if "@" in parts.netloc:
        raise ValueError("a base URL must not hold a user name or password; the key is set separately.")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError("a base URL must not have a query (?...) or a fragment (#...).")
    host = parts.hostname
    if not host:
        raise ValueError(f"{text!r} has no host name.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has a port that is not a number from 0 to 65535.") from None
    if scheme == "http" and not _is_loopback(host):
        raise ValueError(
            f"{text} uses plain http, which is allowed only for this machine "
            "(localhost, 127.0.0.1, ::1): use https."
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date.

    >>> parse_retry_after("7")
    7.0

    :param value: the header's value, or None when there was none.
    :param now: the moment a date is measured from (default: the current time, UTC).
    :returns: seconds to wait (a date in the past gives 0), or None when absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


def scrub(text: str, secret: str | None = None) -> str:
    """Remove a key from text: :func:`core.redact.redact` with this one key.

    :param text: any text that may reach a message, a log or the database.
    :param secret: the key to remove wherever it appears.
    :returns: the text with keys replaced by ``[redacted]``.
    """
    return redact(text, (secret,) if secret else ())


def _scrub_values(value: Any, secret: str | None) -> Any:
    """Scrub every string in parsed JSON, keys of objects included."""
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, dict):
        return {_scrub_values(k, secret): _scrub_values(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_values(v, secret) for v in value]
    return value


def clip(text: str, limit: int = RAW_LIMIT) -> str:
    """Shorten text to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[:limit] + " [...]"


def say(head: str, detail: str | None = None) -> str:
    """Make a sentence for the user from our words and, optionally, the server's.

    >>> say("CometAPI rejected the key", "invalid token.")
    'CometAPI rejected the key: invalid token.'

    :param head: our part, without a final full stop.
    :param detail: the server's message; whitespace is collapsed and it is shortened.
    :returns: one sentence ending in a full stop.
    """
    detail = " ".join((detail or "").split()).rstrip(".")
    if not detail:
        return f"{head}."
    return f"{head}: {clip(detail, DETAIL_LIMIT)}."


def connection_settings(
    default_base_url: str, default_concurrency: int, read_timeout: float = DEFAULT_READ_TIMEOUT
) -> tuple[SettingSpec, ...]:
    """The settings every HTTP provider has: base URL, concurrency and the two timeouts.

    :param default_base_url: the vendor's own address.
    :param default_concurrency: calls in flight at once unless the user says otherwise.
    :param read_timeout: the default read timeout in seconds.
    :returns: the specs, in the order they are shown.
    """
    return (
        SettingSpec("base_url", "Base URL", default_base_url, str,
                    "The service's address; https only (plain http only for this machine)."),
        SettingSpec("concurrency", "Calls at once", default_concurrency, int,
                    "How many images are checked at the same time."),
        SettingSpec("connect_timeout", "Connect timeout (s)", DEFAULT_CONNECT_TIMEOUT, float,
                    "Seconds to wait for a connection before trying again later."),
        SettingSpec("read_timeout", "Read timeout (s)", read_timeout, float,
                    "Seconds to wait for an answer; after that nobody knows if the call was billed."),
    )


class OpenConnections:
    """The connections a session opened, kept weakly, safe to add to and cut from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet = weakref.WeakSet()

    def add(self, connection: Any) -> None:
        with self._lock:
            self._connections.add(connection)

    def cut(self) -> None:
        """Shut every socket down: a read blocked on one ends at once with an error."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def make_session(concurrency: int, live: OpenConnections | None = None) -> requests.Session:
    """A session whose pool holds one connection per concurrent call and never retries.

    :param concurrency: how many calls the provider makes at once.
    :param live: when given, every connection the session opens is added to it (so that
        :meth:`HttpClient.abort` can cut them).
    :returns: the session, with the app's User-Agent.
    """
    session = requests.Session()
    mount_pools(session, concurrency, live)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    return session


def mount_pools(session: requests.Session, concurrency: int, live: OpenConnections | None = None) -> None:
    """Give ``session`` a pool of ``concurrency`` connections per host (fewer would make
    urllib3 open and throw away extra ones, warning "Connection pool is full" each time)."""
    # Retries are the runner's decision: a silent retry here could pay twice.
    adapter = HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency, max_retries=0)
    if live is not None:
        adapter.poolmanager.pool_classes_by_scheme = _tracking_pool_classes(live)
    for prefix in ("https://", "http://"):
        old = session.adapters.get(prefix)
        session.mount(prefix, adapter)
        if old is not None and old is not adapter:
            old.close()


def _tracking_pool_classes(live: OpenConnections) -> dict[str, type]:
    """urllib3 pool classes whose connections register in ``live`` once connected."""

    class Connection(urllib3.connection.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            live.add(self)

    class SecureConnection(urllib3.connection.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            live.add(self)

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}


class _BearerAuth(AuthBase):
    """Sends the key as ``Authorization: Bearer``. Passing an auth object also keeps
    requests from replacing the header with credentials from ``~/.netrc``."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._key}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth([redacted])"


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer, read within the size cap, with keys scrubbed from its text."""

    url: str
    status: int
    headers: Mapping[str, str]  # names in lower case
    text: str
    #: The key, to scrub once more after parsing: a server may echo it JSON-escaped
    #: ("\u0073k-..."), which the scrub of the raw text cannot see.
    secret: str | None = field(default=None, repr=False, compare=False)

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is anything else (HTML, text, a list,
        JSON nested too deeply to parse)."""
        try:
            value = json.loads(self.text)
        except (ValueError, RecursionError):
            return None
        return _scrub_values(value, self.secret) if isinstance(value, dict) else None

    @property
    def raw(self) -> str:
        """The body as kept on an exception: shortened to a few KB."""
        return clip(self.text)

    def looks_like_html(self) -> bool:
        """True for a web page (a proxy's, a login page's, a site at the wrong address)."""
        return "html" in self.headers.get("content-type", "").lower() or self.text.lstrip()[:1] == "<"

    def header_request_id(self) -> str | None:
        """The first request id a header carries, or None."""
        for name in _REQUEST_ID_HEADERS:
            if self.headers.get(name):
                return self.headers[name]
        return None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class HttpClient:
    """One provider's connection pool, timeouts and key.

    Thread-safe for concurrent :meth:`post` calls. The key is never part of its ``repr``,
    of a message, or of a :class:`Reply`'s text.
    """

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        key: str | None,
        concurrency: int,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        """Set up the pool; nothing is sent until :meth:`post`.

        :param service: the vendor's name as messages say it, e.g. ``"CometAPI"``.
        :param base_url: checked by :func:`validate_base_url`.
        :param key: sent as ``Authorization: Bearer``; None sends no Authorization.
        :param concurrency: connections kept in the pool.
        :raises ValueError: the base URL, concurrency or a timeout is not usable.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}.")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("a timeout must be more than 0 seconds.")
        self.service = service
        self.base_url = validate_base_url(base_url)
        self.timeouts = (float(connect_timeout), float(read_timeout))
        self.max_body = max_body
        self._key = key
        self._auth = _BearerAuth(key) if key else None
        self._live = OpenConnections()  # for abort()
        self._session = make_session(concurrency, self._live)
        #: The service has answered at least once (any status): it exists at this address.
        self._answered = threading.Event()

    def resize(self, concurrency: int) -> None:
        """Hold ``concurrency`` connections from now on (call before the batch's calls)."""
        mount_pools(self._session, max(1, concurrency), self._live)

    def abort(self) -> None:
        """Cut every open connection, from any thread: calls in flight fail at once as
        "outcome unknown" instead of waiting for their answer (a second stop)."""
        self._live.cut()

    def __repr__(self) -> str:
        return f"HttpClient({self.service!r}, {self.base_url!r})"

    def scrub(self, text: str) -> str:
        """:func:`scrub` with this client's key."""
        return scrub(text, self._key)

    def get(self, path: str) -> Reply:
        """Send one GET (a free lookup) and read the whole answer, whatever its status.

        :raises core.errors.ProviderError: as :meth:`post`.
        """
        return self._send("GET", path)

    def post(
        self,
        path: str,
        *,
        cancel: threading.Event | None = None,
        json_body: Any = None,
        data: bytes | BinaryIO | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one POST and read the whole answer, whatever its status.

        Redirects are not followed: for these APIs a redirect means a wrong base URL.

        :param path: appended to the base URL, e.g. ``"/kling/v1/videos/image-recognize"``.
        :param cancel: when set before sending, give up. Once sent, the answer is read
            whatever happens to the flag: it may be paid for (:meth:`abort` cuts it instead).
        :param json_body: sent as JSON; or ``data`` with ``content_type``: bytes, or a
            readable object with ``len()`` (sent as it is read, with a Content-Length).
        :param params: query parameters.
        :returns: the answer, any status.
        :raises core.errors.Cancelled: ``cancel`` was set.
        :raises core.errors.ProviderError: the transport failed (see :meth:`transport_error`)
            or the body is bigger than the cap.
        """
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        return self._send("POST", path, json_body=json_body, data=data, content_type=content_type, params=params)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | BinaryIO | None = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        url = self.base_url + path
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            with self._session.request(
                method,
                url,
                json=json_body,
                data=data,
                headers=headers,
                params=params,
                auth=self._auth,
                timeout=self.timeouts,
                stream=True,
                allow_redirects=False,
            ) as response:
                self._answered.set()
                body = self._read_capped(response)
                reply_headers = {k.lower(): v for k, v in response.headers.items()}
                status = response.status_code
        except requests.RequestException as exc:
            # Not chained: a requests exception holds the request, Authorization included.
            raise self.transport_error(exc) from None
        text = self.scrub(body.decode("utf-8", errors="replace").lstrip("\ufeff"))
        return Reply(url=url, status=status, headers=reply_headers, text=text, secret=self._key)

    def _read_capped(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise self._too_big(response.status_code)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(_CHUNK_BYTES):
            total += len(chunk)
            if total > self.max_body:
                raise self._too_big(response.status_code)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, status: int) -> ProtocolError:
        return ProtocolError(
            say(f"{self.service} sent an answer larger than {self.max_body // 1024:,} KB, which is not one of its answers"),
            status=status,
        )

    def transport_error(self, exc: requests.RequestException) -> ProviderError:
        """Sort a failure on the wire by whether the server may have processed the request.

        Nothing reached the server (refused, DNS, connect timeout, proxy): NotProcessed;
        but a refusal or an unknown host from a service that has not answered once through
        this client is a wrong address or a service that is not there: ProviderStopped, said
        at once rather than after minutes of retries. The request went out and the answer
        did not come back whole (read timeout, dropped connection, truncated body):
        OutcomeUnknown. TLS failures and unusable URLs will not mend on retry: ProviderStopped.

        :param exc: what requests raised.
        :returns: the error to raise.
        """
        service, base = self.service, self.base_url
        if isinstance(exc, requests.ConnectTimeout):
            return NotProcessed(say(f"{service} at {base} did not accept a connection within {self.timeouts[0]:g} s"))
        if isinstance(exc, requests.ReadTimeout) or _caused_by(exc, urllib3.exceptions.ReadTimeoutError):
            return OutcomeUnknown(
                say(f"{service} did not answer within {self.timeouts[1]:g} s; the request may have been processed")
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return ProviderStopped(say(f"Could not make a secure connection to {base}", self.scrub(_last_words(exc))))
        if isinstance(exc, requests.exceptions.ProxyError):
            return NotProcessed(say(f"The proxy refused the connection to {service} at {base}"))
        if isinstance(exc, requests.ConnectionError):
            never = not self._answered.is_set()
            unreachable = ProviderStopped if never else NotProcessed
            hint = ", and it has not answered once: check the base URL and the network" if never else ""
            if _caused_by(exc, urllib3.exceptions.NameResolutionError):
                return unreachable(
                    say(f"Could not connect to {service}: the host name in {base} could not be resolved{hint}")
                )
            if _caused_by(exc, urllib3.exceptions.NewConnectionError):
                return unreachable(say(f"Could not connect to {service} at {base}: the connection was refused{hint}"))
            return OutcomeUnknown(
                say(f"The connection to {service} dropped after the request was sent; it may have been processed")
            )
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return OutcomeUnknown(say(f"The connection to {service} dropped in the middle of its answer"))
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            return ProtocolError(say(f"{service} sent a compressed answer that could not be decompressed"))
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema)):
            return ProviderStopped(say(f"The base URL of {service} is not usable ({base})"))
        return OutcomeUnknown(say(f"The request to {service} failed ({type(exc).__name__})"))

    def error(self, cls: type[ProviderError], message: str, reply: Reply, **kw: Any) -> ProviderError:
        """Build an error about an answer, with its status, raw body and request id kept.

        :param cls: one of :mod:`core.errors`.
        :param message: the sentence for the user.
        :param reply: the answer it is about.
        :param kw: ``provider_code``, ``request_id`` (default: from the headers),
            ``retry_after`` for :class:`RateLimited`.
        :returns: the error, ready to raise.
        """
        kw.setdefault("request_id", reply.header_request_id())
        return cls(self.scrub(message), status=reply.status, raw=reply.raw, **kw)

    def wrong_base_url(self, reply: Reply) -> ProviderError:
        """A redirect, a web page or a 404 where the API should be: stop the provider."""
        what = "a web page" if reply.looks_like_html() else f"HTTP {reply.status}"
        where = reply.headers.get("location")
        moved = f" (redirecting to {where})" if where and 300 <= reply.status < 400 else ""
        return self.error(
            ProviderStopped,
            say(f"{self.service} answered {what}{moved} at {reply.url}: the base URL looks wrong, check it in settings"),
            reply,
        )

    def server_fault(self, reply: Reply, detail: str | None, **kw: Any) -> ProviderError:
        """A 5xx: NotProcessed when a gateway says it never forwarded the request, else
        OutcomeUnknown (the service may have done the work and billed it).

        :param kw: passed to :meth:`error`.
        """
        if reply.status in NOT_FORWARDED_STATUSES:
            return self.error(
                NotProcessed, say(f"{self.service} is unavailable (HTTP {reply.status})", detail), reply, **kw
            )
        return self.error(
            OutcomeUnknown,
            say(f"{self.service} failed with HTTP {reply.status}; the request may have been processed", detail),
            reply,
            **kw,
        )

    def rate_limited(self, reply: Reply, detail: str | None, **kw: Any) -> ProviderError:
        """A rate limit, with the server's ``Retry-After`` when it sent one.

        :param kw: passed to :meth:`error`.
        """
        return self.error(
            RateLimited, say(f"{self.service} asks us to slow down", detail), reply, retry_after=reply.retry_after, **kw
        )

    def close(self) -> None:
        self._session.close()


def doubled_path(base_url: str, api_paths: tuple[str, ...]) -> str | None:
    """The end of the base URL's path that an API path begins with, as when the vendor's
    whole address (``https://api.useapi.net/v1/kling``) is pasted as the base URL.

    >>> doubled_path("https://api.useapi.net/v1/kling", ("/v1/kling/assets/",))
    '/v1/kling'

    :returns: that part, starting with ``/``, or None when the path does not overlap.
    """
    base = [part for part in urlsplit(base_url).path.split("/") if part]
    for path in api_paths:
        api = [part for part in path.split("/") if part]
        for start in range(len(base)):
            tail = base[start:]
            if api[: len(tail)] == tail:
                return "/" + "/".join(tail)
    return None


def _causes(exc: BaseException):
    """The exception and everything it wraps (args, urllib3's ``reason``, chained causes)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                stack.append(linked)


def _caused_by(exc: BaseException, cls: type[BaseException]) -> bool:
    return any(isinstance(e, cls) for e in _causes(exc))


def _last_words(exc: BaseException) -> str:
    """The innermost wrapped exception's text, e.g. an SSL library's reason."""
    return str(list(_causes(exc))[-1])


class HttpProvider(Provider):
    """A remote provider reached over HTTP(S) with a key: builds its :class:`HttpClient`
    from the settings and reports an unusable configuration as unavailable."""

    #: The vendor's name in messages, e.g. "CometAPI".
    service: ClassVar[str]
    default_base_url: ClassVar[str]
    #: The paths the provider appends to the base URL (to spot one pasted into it).
    api_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client: HttpClient | None = None
        self._setup_problem: str | None = None
        try:
            self._client = HttpClient(
                service=self.service,
                base_url=config.get("base_url") or self.default_base_url,
                key=config.key,
                concurrency=int(config.get("concurrency") or self.default_concurrency),
                connect_timeout=float(config.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT),
                read_timeout=float(config.get("read_timeout") or DEFAULT_READ_TIMEOUT),
            )
        except ValueError as exc:
            self._setup_problem = say(f"The settings of {self.service} are not usable", str(exc))
        else:
            doubled = doubled_path(self._client.base_url, self.api_paths)
            if doubled is not None:
                shorter = self._client.base_url[: -len(doubled)]
                self._setup_problem = (
                    f"The base URL of {self.service} ends with {doubled}, which Kling Preflight adds itself: "
                    f"remove {doubled} from it ({shorter})."
                )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client!r}, key_source={self.config.key_source!r})"

    def availability(self) -> Availability:
        if self._setup_problem:
            return Availability("unavailable", self._setup_problem)
        return super().availability()

    @property
    def client(self) -> HttpClient:
        """The client, when the provider can run.

        :raises core.errors.ProviderStopped: no key, or settings that cannot work.
        """
        ready = self.availability()
        if not ready.ready or self._client is None:
            raise ProviderStopped(say(f"{self.service} cannot run", ready.reason))
        return self._client

    @property
    def longest_call(self) -> float:
        if self._client is None:
            return super().longest_call
        connect, read = self._client.timeouts
        return connect + read + 1.0

    def set_concurrency(self, calls: int) -> None:
        if self._client is not None:
            self._client.resize(calls)

    def abort(self) -> None:
        if self._client is not None:
            self._client.abort()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
