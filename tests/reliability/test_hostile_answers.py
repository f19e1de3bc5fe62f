"""Hostile answers: what a broken, malicious or merely surprising server can send.

Property-based tests (hypothesis) have the fake servers answer with arbitrary JSON, shapes
close to the real ones with wrong types, truncated bodies, bytes that are not text, bodies
that echo the key, and any status. Both providers' parsers must return a result or raise one
of :mod:`core.errors` with a clear sentence, never anything else; what they return must be
storable and exportable. Oversized answers, declared or endless, are refused once the body
passes :data:`core.http.MAX_BODY_BYTES`, and the client never reads much past it.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ProtocolError, ProviderError
from core.export import write_csv, write_json
from core.http import MAX_BODY_BYTES, RAW_LIMIT
from core.models import FLAG_TYPES, Outcome, ProbedImage, ScannedFile, Status
from core.probe import probe_file
from core.providers import CheckContext, DictMemo, ProviderConfig
from core.store import RowFilter, Store
from plugins.cometapi import CometAPIProvider
from plugins.useapi import UPLOAD_MEMO, UseAPIProvider
from tests.conftest import SAMPLES
from tests.fakes import FakeCometAPI, FakeUseAPI, Respond

EXAMPLES = 150
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI must not flake
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what a server may send ---------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
flag_entries = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*FLAG_TYPES, "hand_seg", ""]) | json_values,
        "is_contain": st.booleans() | json_values,
        "url": st.sampled_from(["https://cdn.example/x.png", ""]) | json_values,
    },
)
comet_shapes = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from([0, "0", 1201, 1303, 5000, "invalid_request", None]) | json_values,
        "message": json_values,
        "request_id": json_values,
        "error": json_values | st.fixed_dictionaries({}, optional={"message": json_values, "code": json_values}),
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "final_unit_deduction": json_values,
                "task_result": json_values | st.fixed_dictionaries({"images": st.lists(flag_entries, max_size=6) | json_values}),
            },
        ),
    },
)
face_bounds = json_values | st.fixed_dictionaries(
    {}, optional={k: st.integers() | st.floats() | st.text(max_size=8) | st.none() for k in ("x", "y", "width", "height")}
).map(lambda box: json.dumps(box, allow_nan=True))
face_items = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "resources": json_values | st.lists(st.fixed_dictionaries({}, optional={"type": json_values, "url": json_values})),
        "arguments": json_values | st.lists(st.fixed_dictionaries({"name": st.just("face_bound") | json_values,
                                                                     "value": face_bounds})),
    },
)  # fmt: skip
useapi_shapes = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from([0, 3, 1, None]) | json_values,
        "url": st.sampled_from(["https://s21-kling.klingai.com/a.jpg", ""]) | json_values,
        "message": json_values,
        "error": json_values,
        "code": json_values,
        "faceItems": st.lists(face_items, max_size=4) | json_values,
    },
)
#: Success answers with damaged insides: they reach the parsers' deepest paths.
comet_successes = st.fixed_dictionaries(
    {
        "code": st.sampled_from([0, "0"]),
        "data": st.fixed_dictionaries(
            {"task_result": st.fixed_dictionaries({"images": st.lists(flag_entries, max_size=6)})},
            optional={"final_unit_deduction": st.sampled_from(["0.2", 0.2, "", "NaN", "-1"]) | json_values},
        ),
    },
    optional={"message": json_values, "request_id": st.text(max_size=40) | json_values},
)


def useapi_successes(upload_url: str) -> st.SearchStrategy:
    """Upload and face answers that succeed, with damaged insides; ``upload_url`` is where
    the fake really holds the uploaded image."""
    return st.fixed_dictionaries(
        {"status": st.sampled_from([0, 3]), "url": st.sampled_from([upload_url, "https://s21-kling.klingai.com/a.jpg"])},
        optional={"faceItems": st.lists(face_items, max_size=4), "mediaInfo": json_values, "fileName": json_values},
    )


#: Statuses a server may use. 1xx, 204 and 304 carry no body, so the fake cannot frame one.
statuses = st.sampled_from([200] * 6 + [301, 302, 400, 401, 402, 403, 404, 405, 413, 418, 429, 500, 502, 503, 504, 524, 599])
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@st.composite
def answers(draw, successes, shapes, key: str) -> Respond:
    """One answer: a status, a body (JSON, damaged JSON or any bytes) and headers; about
    one in three is a success answer, sent whole with status 200."""
    if draw(st.integers(0, 2)) == 0:
        return Respond(200, json.dumps(draw(successes), allow_nan=True).encode(), {"Content-Type": "application/json"})
    value = draw(shapes | json_values)
    text = json.dumps(value, allow_nan=True)  # NaN and Infinity are not JSON, but are sent
    how = draw(st.sampled_from(["whole", "whole", "cut", "bom", "bytes", "key", "html"]))
    if how == "cut":
        body = text.encode()[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif how == "bom":
        body = b"\xef\xbb\xbf" + text.encode()
    elif how == "bytes":
        body = draw(st.binary(max_size=200))
    elif how == "key":  # a server that echoes the key back
        body = json.dumps({"error": {"message": f"bad header Authorization: Bearer {key}", "code": key},
                           "message": key, "request_id": key, "url": f"https://x.example/?k={key}"}).encode()  # fmt: skip
    else:
        body = text.encode() if how == "whole" else b"<html><body>" + text.encode() + b"</body></html>"
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/html", "text/plain", "application/octet-stream"]))}
    if draw(st.booleans()):
        headers["Retry-After"] = draw(header_text | st.sampled_from(["0", "1", "-5", "1e9", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"]))
    if draw(st.booleans()):
        headers["X-Request-Id"] = draw(header_text)
    if draw(st.integers(0, 9)) == 0:  # declares more than it sends: truncated on the wire
        headers["Content-Length"] = str(len(body) + draw(st.integers(1, 1000)))
    return Respond(draw(statuses), body, headers)


# -- the properties -------------------------------------------------------------------------


def assert_clear_error(exc: ProviderError, key: str) -> None:
    message = str(exc)
    assert message.strip() and message.rstrip().endswith(".") and "Traceback" not in message, repr(message)
    # One line of reasonable length, whatever the server sent.
    assert "\n" not in message and "\r" not in message and len(message) < 1000, repr(message)
    for text in (message, exc.raw or "", exc.request_id or "", exc.provider_code or "", repr(exc)):
        assert key not in text
    assert exc.raw is None or len(exc.raw) <= RAW_LIMIT + len(" [...]")


def assert_storable(store: Store, image: ProbedImage, provider_id: str, result) -> None:
    """A result must go into the database and out through both exports intact."""
    for name, flag in result.flags().items():
        assert flag in (True, False, None), name
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.result_urls.items())
    assert result.cost is None or isinstance(result.cost, str)
    assert result.request_id is None or isinstance(result.request_id, str)
    for face in result.faces or ():
        assert all(isinstance(v, int) for v in (face.x, face.y, face.width, face.height))
    store.save_outcomes([Outcome(image.sha256, provider_id, image.path, Status.CHECKED, result=result)])
    rows = list(store.query_rows(RowFilter(provider=provider_id, shas=(image.sha256,))))
    assert len(rows) == 1 and rows[0]["status"] == "checked"
    assert [rows[0][name] for name in FLAG_TYPES] == [result.flags()[name] for name in FLAG_TYPES]
    out = io.StringIO()
    write_json(rows, out)
    assert json.loads(out.getvalue())[0]["sha256"] == image.sha256
    out = io.StringIO()
    write_csv(rows, out)
    assert out.getvalue().count("\n") >= 2


def exercise(provider, image: ProbedImage, data: bytes, memo: DictMemo, store: Store, key: str) -> str:
    try:
        result = provider.check(image, data, CheckContext(cancel=threading.Event(), memo=memo))
    except ProviderError as exc:
        assert_clear_error(exc, key)
        return type(exc).__name__
    assert key not in (result.raw or "") and key not in (result.request_id or "")
    assert_storable(store, image, provider.id, result)
    return "result"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[ProbedImage, bytes]:
    path = SAMPLES / "mpl_grace_hopper.jpg"
    st_ = path.stat()
    return probe_file(ScannedFile(str(path), st_.st_size, st_.st_mtime_ns)), path.read_bytes()


@pytest.fixture(scope="module")
def store(tmp_path_factory, sample) -> Store:
    with Store(tmp_path_factory.mktemp("answers") / "results.db") as store:
        store.save_probes([sample[0]])
        yield store


@pytest.fixture(scope="module")
def comet_server(secret_ledger):
    with FakeCometAPI(key=secret_ledger.new_key("comet")) as fake:
        yield fake
    assert not fake.internal_errors


@pytest.fixture(scope="module")
def useapi_server(secret_ledger):
    with FakeUseAPI(key=secret_ledger.new_key("useapi")) as fake:
        yield fake
    assert not fake.internal_errors


def comet_provider(fake, base_url: str | None = None) -> CometAPIProvider:
    settings_ = {"base_url": base_url or fake.base_url, "read_timeout": 5.0, "concurrency": 1}
    return CometAPIProvider(ProviderConfig(settings=settings_, key=fake.key, key_source="session"))


def useapi_provider(fake, base_url: str | None = None) -> UseAPIProvider:
    settings_ = {"base_url": base_url or fake.base_url, "read_timeout": 5.0, "concurrency": 1}
    return UseAPIProvider(ProviderConfig(settings=settings_, key=fake.key, key_source="session"))


# -- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tallies() -> dict[str, dict[str, int]]:
    """Outcomes met by each property test: property name -> outcome -> examples."""
    return {}


def tally(tallies: dict, name: str, outcome: str) -> None:
    seen = tallies.setdefault(name, {})
    seen[outcome] = seen.get(outcome, 0) + 1


@contextlib.contextmanager
def counting_crashes(tallies: dict, name: str) -> Iterator[None]:
    """Anything but a result or a ProviderError is a crash: tallied for the figures, then
    raised so that the property test fails on it (and Hypothesis shrinks it)."""
    try:
        yield
    except AssertionError:  # a broken promise, not a crash: it fails the test all the same
        raise
    except Exception:
        tally(tallies, name, "crash")
        raise


@HYPOTHESIS
@given(data=st.data())
def test_cometapi_reads_any_answer_without_crashing(data, comet_server, sample, store, tallies):
    fake = comet_server
    fake.reset()
    fake.enqueue("recognize", data.draw(answers(comet_successes, comet_shapes, fake.key)))
    with counting_crashes(tallies, "cometapi"):
        outcome = exercise(comet_provider(fake), *sample, DictMemo(), store, fake.key)
    tally(tallies, "cometapi", outcome)


@HYPOTHESIS
@given(data=st.data())
def test_useapi_reads_any_face_answer_without_crashing(data, useapi_server, sample, store, tallies):
    fake = useapi_server
    fake.reset()
    image, raw = sample
    fake.enqueue("faces", data.draw(answers(useapi_successes(fake.asset_url(image.sha256, "JPEG")), useapi_shapes, fake.key)))
    # The upload is remembered, so the one call made is the face call.
    memo = DictMemo({(image.sha256, UPLOAD_MEMO): f"{fake.base_url}/assets/{image.sha256}.jpg"})
    with counting_crashes(tallies, "useapi_faces"):
        outcome = exercise(useapi_provider(fake), image, raw, memo, store, fake.key)
    tally(tallies, "useapi_faces", outcome)


@HYPOTHESIS
@given(data=st.data())
def test_useapi_reads_any_upload_answer_without_crashing(data, useapi_server, sample, store, tallies):
    fake = useapi_server
    image, raw = sample
    if image.sha256 not in fake.uploads:  # the fake must hold the image an answer points to
        useapi_provider(fake).check(image, raw, CheckContext(cancel=threading.Event(), memo=DictMemo()))
    fake.enqueue("upload", data.draw(answers(useapi_successes(fake.asset_url(image.sha256, "JPEG")), useapi_shapes, fake.key)))
    memo = DictMemo()
    with counting_crashes(tallies, "useapi_upload"):
        outcome = exercise(useapi_provider(fake), *sample, memo, store, fake.key)
    tally(tallies, "useapi_upload", outcome)
    remembered = memo.get(sample[0].sha256, UPLOAD_MEMO)
    assert remembered is None or (isinstance(remembered, str) and remembered)


def test_the_property_tests_met_every_kind_of_outcome(tallies, figures):
    """Guards the generators: the properties above must have met real results and errors
    of several kinds, or they prove little."""
    if len(tallies) < 3:
        pytest.skip("run with the three property tests above")
    crashes = sum(seen.pop("crash", 0) for seen in tallies.values())
    assert crashes == 0, tallies
    for name, seen in tallies.items():
        assert seen.get("result", 0) > 0 and sum(seen.values()) >= EXAMPLES, (name, seen)
        assert len(seen) >= 3, (name, seen)
    figures(
        "hostile_answers",
        examples={name: sum(seen.values()) for name, seen in tallies.items()},
        outcomes=tallies,
        crashes=crashes,
    )


# -- oversized answers ----------------------------------------------------------------------


class EndlessServer:
    """A raw HTTP server on 127.0.0.1 whose every answer is an endless chunked body.

    Counts the bytes it managed to send; stops at ``give_up`` bytes or when the client hangs up.
    """

    def __init__(self, status: int = 200, give_up: int = 256 * 1024 * 1024) -> None:
        self.status = status
        self.give_up = give_up
        self.sent = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), b"0"))
            while len(body) < length:
                body += conn.recv(65536)
            chunk = b"[" * 65536
            framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            try:
                conn.sendall(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" % self.status)
                while self.sent < self.give_up:
                    conn.sendall(framed)
                    self.sent += len(chunk)
            except OSError:  # the client hung up: what we wanted
                pass

    def close(self) -> None:
        self._sock.close()
        self._thread.join(10)


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("make", [comet_provider, useapi_provider], ids=["cometapi", "useapi"])
def test_an_endless_answer_is_refused_after_the_limit(make, status, comet_server, useapi_server, sample, figures):
    server = EndlessServer(status)
    try:
        fake = comet_server if make is comet_provider else useapi_server
        provider = make(fake, server.base_url)
        image, raw = sample
        memo = DictMemo({(image.sha256, UPLOAD_MEMO): "https://s21-kling.klingai.com/a.jpg"})
        with pytest.raises(ProtocolError, match="larger than"):
            provider.check(image, raw, CheckContext(cancel=threading.Event(), memo=memo))
        provider.close()
    finally:
        server.close()
    # What the server got out is the limit plus what the two sockets' buffers held.
    assert MAX_BODY_BYTES <= server.sent < MAX_BODY_BYTES + 32 * 1024 * 1024, server.sent
    assert server.sent < server.give_up
    figures("hostile_answers", oversized_refused=1, bytes_sent_before_refusal=server.sent)


@pytest.mark.parametrize("make", [comet_provider, useapi_provider], ids=["cometapi", "useapi"])
def test_a_declared_oversized_answer_is_refused_unread(make, comet_server, useapi_server, sample, figures):
    fake = comet_server if make is comet_provider else useapi_server
    fake.reset()
    endpoint = "recognize" if make is comet_provider else "faces"
    fake.enqueue(endpoint, Respond(200, b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}", {"Content-Type": "application/json"}))
    image, raw = sample
    memo = DictMemo({(image.sha256, UPLOAD_MEMO): f"{fake.base_url}/assets/{image.sha256}.jpg"})
    with pytest.raises(ProtocolError, match="larger than"):
        make(fake).check(image, raw, CheckContext(cancel=threading.Event(), memo=memo))
    figures("hostile_answers", oversized_refused=1)


@pytest.mark.parametrize("make", [comet_provider, useapi_provider], ids=["cometapi", "useapi"])
def test_deeply_nested_json_is_a_protocol_error(make, comet_server, useapi_server, sample):
    fake = comet_server if make is comet_provider else useapi_server
    fake.reset()
    endpoint = "recognize" if make is comet_provider else "faces"
    fake.enqueue(endpoint, Respond(200, b"[" * 100_000, {"Content-Type": "application/json"}))
    image, raw = sample
    memo = DictMemo({(image.sha256, UPLOAD_MEMO): f"{fake.base_url}/assets/{image.sha256}.jpg"})
    with pytest.raises(ProviderError) as caught:
        make(fake).check(image, raw, CheckContext(cancel=threading.Event(), memo=memo))
    assert_clear_error(caught.value, fake.key)


def test_a_hostile_status_value_does_not_flood_the_message(useapi_server, sample):
    fake = useapi_server
    fake.reset()
    fake.enqueue("faces", Respond(200, {"status": "line one\nline two " + "x" * 100_000, "faceItems": []}))
    image, raw = sample
    memo = DictMemo({(image.sha256, UPLOAD_MEMO): f"{fake.base_url}/assets/{image.sha256}.jpg"})
    with pytest.raises(ProtocolError) as caught:
        useapi_provider(fake).check(image, raw, CheckContext(cancel=threading.Event(), memo=memo))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 1000
