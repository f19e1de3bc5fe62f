"""core.http against a tiny raw HTTP server on 127.0.0.1 that answers exactly what a test
scripts: well-formed answers, redirects, huge bodies, silence, dropped connections."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timezone
from typing import Callable

import pytest
import requests
import urllib3.exceptions

from core.errors import (
    Cancelled,
    NotProcessed,
    OutcomeUnknown,
    ProtocolError,
    ProviderStopped,
)
from core.http import USER_AGENT, HttpClient, parse_retry_after, say, scrub, validate_base_url

KEY = "sk-test-very-secret-key-123"

Action = Callable[[socket.socket], None]


class RawServer:
    """Accepts connections one at a time, records each request, then runs the next action."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.actions: list[Action] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.release = threading.Event()  # unblocks actions that hold a connection open
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(_read_request(conn))
                    self.actions.pop(0)(conn)
                except OSError:
                    pass

    def close(self) -> None:
        self.release.set()
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


def _read_request(conn: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += conn.recv(65536)
    return lines[0], headers, body


def answer(status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None) -> Action:
    def act(conn: socket.socket) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        size = len(body) if length is None else length
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {size}\r\nConnection: close\r\n{extra}\r\n".encode() + body
        )

    return act


@pytest.fixture
def server():
    srv = RawServer()
    yield srv
    srv.close()


def client_for(url: str, **kw) -> HttpClient:
    kw.setdefault("read_timeout", 5.0)
    return HttpClient(service="Vendor", base_url=url, key=KEY, concurrency=2, connect_timeout=2.0, **kw)


# -- validate_base_url -------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("https://vendor.example.com", "https://vendor.example.com"),
        ("https://vendor.example.com/", "https://vendor.example.com"),
        ("  HTTPS://API.Example.com/prefix/ ", "https://api.example.com/prefix"),
        ("https://example.com:8443/v1", "https://example.com:8443/v1"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
        ("http://127.45.6.7", "http://127.45.6.7"),
        ("http://[::1]:8080/api", "http://[::1]:8080/api"),
    ],
)
def test_validate_base_url_accepts_and_normalises(given, expected):
    assert validate_base_url(given) == expected


@pytest.mark.parametrize(
    "given, words",
    [
        ("http://vendor.example.com", "plain http"),
        ("http://10.0.0.1", "plain http"),
        ("http://localhost.evil.com", "plain http"),
        ("ftp://vendor.example.com", "https://"),
        ("vendor.example.com", "https://"),
        ("", "https://"),
        ("https://", "no host"),
        ("https://user:hunter2@vendor.example.com", "user name or password"),
        ("https://vendor.example.com/?key=hunter2", "query"),
        ("https://vendor.example.com/#hunter2", "fragment"),
        ("https://vendor.example.com:99999", "port"),
    ],
)
def test_validate_base_url_refuses_with_a_sentence(given, words):
    with pytest.raises(ValueError) as caught:
        validate_base_url(given)
    message = str(caught.value)
    assert words in message
    assert message.endswith(".")
    assert "hunter2" not in message


# -- parse_retry_after, scrub, say ---------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == expected


def test_scrub_removes_the_key_and_any_bearer_token():
    text = f'echo {KEY} and {{"Authorization": "Bearer other-token-9"}} and bearer   x.y.z'
    cleaned = scrub(text, KEY)
    assert KEY not in cleaned and "other-token-9" not in cleaned and "x.y.z" not in cleaned
    assert cleaned.count("[redacted]") == 3


def test_say_makes_one_sentence_and_shortens_long_details():
    assert say("Vendor refused", "  bad\n image.  ") == "Vendor refused: bad image."
    assert say("Vendor refused") == "Vendor refused."
    assert len(say("Vendor refused", "x" * 5000)) < 300


# -- HttpClient.post: what goes out, what comes back ---------------------------------------------


def test_post_sends_key_user_agent_and_json_and_returns_the_answer(server):
    server.actions.append(answer(200, b'{"ok": true}', {"Content-Type": "application/json", "X-Request-Id": "r-1"}))
    reply = client_for(server.url + "/base/").post("/path", json_body={"image": "abc"}, params={"email": "a@b.c"})
    line, headers, body = server.requests[0]
    assert line == "POST /base/path?email=a%40b.c HTTP/1.1"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("kling-preflight/")
    assert headers["content-type"] == "application/json"
    assert body == b'{"image": "abc"}'
    assert (reply.status, reply.json_object(), reply.header_request_id()) == (200, {"ok": True}, "r-1")


def test_post_sends_raw_bytes_with_the_given_content_type(server):
    server.actions.append(answer(200, b"{}"))
    client_for(server.url).post("/up", data=b"\x89PNG\r\n", content_type="image/png")
    _, headers, body = server.requests[0]
    assert headers["content-type"] == "image/png" and body == b"\x89PNG\r\n"


def test_a_key_echoed_by_the_server_is_scrubbed_from_the_answer(server):
    server.actions.append(answer(401, f'{{"error": "bad token Bearer {KEY}", "seen": "{KEY}"}}'.encode()))
    reply = client_for(server.url).post("/x")
    assert KEY not in reply.text and KEY not in reply.raw
    assert reply.json_object() == {"error": "bad token Bearer [redacted]", "seen": "[redacted]"}


def test_redirects_are_answers_not_followed(server):
    server.actions.append(answer(301, b"", {"Location": "https://elsewhere.example/"}))
    reply = client_for(server.url).post("/x")
    assert reply.status == 301 and len(server.requests) == 1
    error = client_for(server.url).wrong_base_url(reply)
    assert isinstance(error, ProviderStopped) and "base URL looks wrong" in str(error)


@pytest.mark.parametrize(
    "body, content_type, html",
    [(b"<html><body>Bad gateway</body></html>", "text/html", True), (b"  <!DOCTYPE html>", "", True),
     (b"Account configuration not found", "text/plain", False), (b"", "", False), (b"[1, 2]", "application/json", False)],
)
def test_bodies_that_are_not_json_objects(server, body, content_type, html):
    server.actions.append(answer(200, body, {"Content-Type": content_type} if content_type else {}))
    reply = client_for(server.url).post("/x")
    assert reply.json_object() is None
    assert reply.looks_like_html() is html


def test_retry_after_header_is_read_from_the_answer(server):
    server.actions.append(answer(429, b"{}", {"Retry-After": "12"}))
    reply = client_for(server.url).post("/x")
    assert reply.retry_after == 12.0
    assert client_for(server.url).rate_limited(reply, "slow down").retry_after == 12.0


# -- size cap ----------------------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_unread(server):
    server.actions.append(answer(200, b"", length=5_000_000))
    with pytest.raises(ProtocolError) as caught:
        client_for(server.url).post("/x")
    assert caught.value.status == 200 and "larger than" in str(caught.value)


def test_an_endless_body_without_a_length_stops_at_the_cap(server):
    def endless(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        piece = b"x" * 65536
        for _ in range(100):  # 6.5 MB: well past the default 2 MB cap
            conn.sendall(piece)

    server.actions.append(endless)
    with pytest.raises(ProtocolError):
        client_for(server.url).post("/x")


def test_a_body_just_under_a_small_cap_is_read(server):
    server.actions.append(answer(200, b"y" * 1000))
    assert len(client_for(server.url, max_body=1000).post("/x").text) == 1000


# -- transport failures --------------------------------------------------------------------------


def test_connection_refused_by_a_service_that_never_answered_stops_it():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ProviderStopped) as caught:
        client_for(f"http://127.0.0.1:{port}").post("/x")
    assert "refused" in str(caught.value) and "check the base URL" in str(caught.value)
    assert caught.value.status is None


def test_a_connection_closed_without_an_answer_is_outcome_unknown(server):
    server.actions.append(lambda conn: None)  # read the request, answer nothing, close
    with pytest.raises(OutcomeUnknown) as caught:
        client_for(server.url).post("/x")
    assert "may have been processed" in str(caught.value)


def test_an_answer_cut_short_is_outcome_unknown(server):
    server.actions.append(answer(200, b'{"code": 0', length=500))
    with pytest.raises(OutcomeUnknown):
        client_for(server.url).post("/x")


def test_silence_past_the_read_timeout_is_outcome_unknown(server):
    server.actions.append(lambda conn: server.release.wait(5))
    with pytest.raises(OutcomeUnknown) as caught:
        client_for(server.url, read_timeout=0.2).post("/x")
    assert "did not answer within 0.2 s" in str(caught.value)


def test_silence_in_the_middle_of_a_body_is_outcome_unknown(server):
    def stall(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        server.release.wait(5)

    server.actions.append(stall)
    with pytest.raises(OutcomeUnknown):
        client_for(server.url, read_timeout=0.2).post("/x")


def test_transport_errors_that_a_loopback_server_cannot_cause():
    client = client_for("https://api.example.com")
    dns = urllib3.exceptions.NameResolutionError("api.example.com", None, socket.gaierror("no such host"))
    refused_by_dns = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", dns))
    # Nothing has answered through this client yet: a wrong host, said at once.
    assert isinstance(client.transport_error(refused_by_dns), ProviderStopped)
    assert "could not be resolved" in str(client.transport_error(refused_by_dns))
    assert isinstance(client.transport_error(requests.ConnectTimeout()), NotProcessed)
    assert isinstance(client.transport_error(requests.ReadTimeout()), OutcomeUnknown)
    assert isinstance(client.transport_error(requests.exceptions.ChunkedEncodingError()), OutcomeUnknown)
    assert isinstance(client.transport_error(requests.exceptions.SSLError("certificate verify failed")), ProviderStopped)


def test_a_set_cancel_flag_stops_before_anything_is_sent(server):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        client_for(server.url).post("/x", cancel=cancel)
    assert server.requests == []


def test_the_key_is_not_in_the_repr_or_any_transport_message(server):
    client = client_for(server.url)
    server.actions.append(lambda conn: None)
    with pytest.raises(OutcomeUnknown) as caught:
        client.post("/x")
    assert KEY not in repr(client) and KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("kw", [{"concurrency": 0}, {"read_timeout": 0}, {"base_url": "http://example.com"}])
def test_a_client_with_unusable_settings_is_refused(kw):
    settings = {"service": "Vendor", "base_url": "https://api.example.com", "key": KEY, "concurrency": 1, **kw}
    with pytest.raises(ValueError):
        HttpClient(**settings)


def test_an_answer_that_arrives_after_the_cancel_flag_is_read_whole(server):
    # The request was sent before the stop: its answer may be paid for, so it is kept.
    cancel = threading.Event()

    def slow(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"code\"")
        cancel.set()  # the user stops while the answer is on its way
        threading.Event().wait(0.1)
        conn.sendall(b": 0}")

    server.actions.append(slow)
    reply = client_for(server.url).post("/x", cancel=cancel)
    assert reply.status == 200 and reply.json_object() == {"code": 0}


def test_abort_cuts_a_call_waiting_for_its_answer(server):
    client = client_for(server.url, read_timeout=30)
    server.actions.append(lambda conn: server.release.wait(10))
    caught: list[BaseException] = []

    def call() -> None:
        try:
            client.post("/x")
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = threading.Event()
    for _ in range(200):  # until the request has reached the server
        if server.requests:
            break
        deadline.wait(0.01)
    client.abort()
    caller.join(5)
    assert not caller.is_alive(), "the call was still waiting after abort()"
    assert len(caught) == 1 and isinstance(caught[0], OutcomeUnknown)
