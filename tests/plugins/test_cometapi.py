"""CometAPIProvider against the fake CometAPI server: every row of the error table, success
parsing, transport faults, verify() and the key's secrecy."""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

import pytest

from core.errors import (
    Cancelled,
    ImageRejected,
    NotProcessed,
    OutcomeUnknown,
    ProtocolError,
    ProviderError,
    ProviderStopped,
    RateLimited,
)
from core.models import FLAG_TYPES, ProbedImage, ScannedFile
from core.probe import probe_file
from core.providers import CheckContext, DictMemo, ProviderConfig
from plugins.cometapi import CometAPIProvider
from tests.fakes.cometapi import COMET_ERRORS, EXTRA_TYPE
from tests.fakes.server import Delay, Drop, Respond, SlowBody

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def sample(name: str = "mpl_grace_hopper.jpg") -> tuple[ProbedImage, bytes]:
    path = SAMPLES / name
    st = path.stat()
    return probe_file(ScannedFile(str(path), st.st_size, st.st_mtime_ns)), path.read_bytes()


def provider_for(fake, *, key: str | None = None, **settings) -> CometAPIProvider:
    settings = {"base_url": fake.base_url, "read_timeout": 5.0, **settings}
    return CometAPIProvider(ProviderConfig(settings=settings, key=key or fake.key, key_source="session"))


def check_once(provider: CometAPIProvider, name: str = "mpl_grace_hopper.jpg", cancel=None):
    image, data = sample(name)
    return provider.check(image, data, CheckContext(cancel=cancel or threading.Event(), memo=DictMemo()))


def recorded(fake, count: int = 1):
    """The fake's request log once it holds ``count`` requests (the fake records each one
    just after its answer has gone out, so the log may trail the client by a moment)."""
    finished = threading.Event()
    for _ in range(200):
        if len(fake.requests) >= count:
            break
        finished.wait(0.01)
    return fake.requests


def assert_sentence_without_key(error: ProviderError, key: str) -> None:
    message = str(error)
    # useapi.net writes its name in lower case
    assert (message[:1].isupper() or message.startswith("useapi")) and message.endswith("."), message
    for text in (message, repr(error), error.raw or ""):
        assert key not in text


def assert_row(error: ProviderError, canned: Respond, cls: type, words: str, *, key: str) -> None:
    """An error table row held: the class, the status sent, the words, and a clean sentence."""
    assert type(error) is cls
    assert error.status == canned.status
    assert words in str(error)
    assert_sentence_without_key(error, key)


# -- the error table ---------------------------------------------------------------------------

ERROR_TABLE = {
    "bad_request_1200": (ImageRejected, "refused the image"),
    "bad_image_1201": (ImageRejected, "refused the image"),
    "policy_1300": (ImageRejected, "content policy"),
    "content_policy_1301": (ImageRejected, "content policy"),
    "bad_token": (ProviderStopped, "rejected the key"),
    "no_token": (ProviderStopped, "rejected the key"),
    "auth_1000": (ProviderStopped, "rejected the key"),
    "auth_1001": (ProviderStopped, "rejected the key"),
    "auth_1002": (ProviderStopped, "rejected the key"),
    "auth_1003": (ProviderStopped, "rejected the key"),
    "auth_1004": (ProviderStopped, "rejected the key"),
    "forbidden": (ProviderStopped, "does not allow"),
    "no_balance": (ProviderStopped, "out of balance"),
    "not_found_html": (ProviderStopped, "base URL looks wrong"),
    "moved_301": (ProviderStopped, "base URL looks wrong"),
    "html_200": (ProviderStopped, "base URL looks wrong"),
    "rate_1302": (RateLimited, "slow down"),
    "concurrency_1303": (RateLimited, "slow down"),
    "concurrency_1303_retry_after": (RateLimited, "slow down"),
    "bare_429": (RateLimited, "slow down"),
    "bare_429_text": (RateLimited, "slow down"),
    "account_1100": (ProviderStopped, "arrears"),
    "arrears_1101": (ProviderStopped, "arrears"),
    "pack_1102": (ProviderStopped, "arrears"),
    "invalid_request_500": (ImageRejected, "malformed"),
    "server_error_5000": (OutcomeUnknown, "may have been processed"),
    "unavailable_5001": (NotProcessed, "unavailable"),
    "timeout_5002": (OutcomeUnknown, "may have been processed"),
    "gateway_500": (OutcomeUnknown, "may have been processed"),
    "bad_gateway_502_html": (OutcomeUnknown, "may have been processed"),
    "unavailable_503_text": (NotProcessed, "unavailable"),
    "gateway_timeout_504_empty": (OutcomeUnknown, "may have been processed"),
    "cloudflare_524_html": (OutcomeUnknown, "may have been processed"),
    "plain_500": (OutcomeUnknown, "may have been processed"),
    "empty_500": (OutcomeUnknown, "may have been processed"),
    "relay_400": (ImageRejected, "refused the request"),
    "relay_500": (OutcomeUnknown, "may have been processed"),
    "code_not_zero_200": (ImageRejected, "refused the image"),
}


def test_the_table_covers_every_canned_error():
    assert set(ERROR_TABLE) == set(COMET_ERRORS)


@pytest.mark.parametrize("name", sorted(ERROR_TABLE))
def test_each_error_row_is_classified(fake_cometapi, name):
    fake_cometapi.enqueue("recognize", COMET_ERRORS[name])
    with pytest.raises(ProviderError) as caught:
        check_once(provider_for(fake_cometapi))
    assert_row(caught.value, COMET_ERRORS[name], *ERROR_TABLE[name], key=fake_cometapi.key)
    assert len(recorded(fake_cometapi)) == 1  # one attempt: retrying is the runner's job


def test_kling_codes_and_request_ids_are_kept_on_errors(fake_cometapi):
    fake_cometapi.enqueue("recognize", COMET_ERRORS["concurrency_1303"], COMET_ERRORS["bad_token"])
    provider = provider_for(fake_cometapi)
    with pytest.raises(RateLimited) as limited:
        check_once(provider)
    assert (limited.value.provider_code, limited.value.request_id) == ("1303", "canned-1303")
    assert "parallel task over resource pack limit" in str(limited.value)
    with pytest.raises(ProviderStopped) as stopped:
        check_once(provider)
    # the gateway writes its request id into the message
    assert (stopped.value.provider_code, stopped.value.request_id) == ("invalid_request", "canned-401")
    assert json.loads(stopped.value.raw) == COMET_ERRORS["bad_token"].json()


def test_retry_after_is_read_when_sent_and_none_otherwise(fake_cometapi):
    fake_cometapi.enqueue(
        "recognize", COMET_ERRORS["concurrency_1303_retry_after"], COMET_ERRORS["bare_429"],
        Respond(429, {"error": {"message": "slow", "code": ""}}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    )
    provider = provider_for(fake_cometapi)
    waits = []
    for _ in range(3):
        with pytest.raises(RateLimited) as caught:
            check_once(provider)
        waits.append(caught.value.retry_after)
    assert waits == [2.0, None, 0.0]  # a date in the past means "now"


@pytest.mark.parametrize(
    "answer",
    [
        Respond(200, "SUCCEED"),
        Respond(200),
        Respond(200, [1, 2]),
        Respond(200, {"code": 0, "message": "SUCCEED", "data": None}),
        Respond(200, {"code": 0, "message": "SUCCEED", "data": {"task_result": {"images": "none"}}}),
        Respond(418, {"teapot": True}),
    ],
    ids=["text", "empty", "list", "no-data", "images-not-a-list", "unknown-status"],
)
def test_unreadable_answers_are_protocol_errors(fake_cometapi, answer):
    fake_cometapi.enqueue("recognize", answer)
    with pytest.raises(ProtocolError) as caught:
        check_once(provider_for(fake_cometapi))
    assert caught.value.status == answer.status
    assert_sentence_without_key(caught.value, fake_cometapi.key)


def test_an_oversized_answer_is_a_protocol_error(fake_cometapi):
    fake_cometapi.enqueue("recognize", Respond(200, b"{" + b" " * (3 * 1024 * 1024) + b"}"))
    with pytest.raises(ProtocolError) as caught:
        check_once(provider_for(fake_cometapi))
    assert "larger than" in str(caught.value)


def test_a_key_echoed_in_an_error_never_reaches_the_message(fake_cometapi):
    echo = {"error": {"message": f"invalid token {fake_cometapi.key} (Bearer {fake_cometapi.key})", "code": ""}}
    fake_cometapi.enqueue("recognize", Respond(401, echo))
    with pytest.raises(ProviderStopped) as caught:
        check_once(provider_for(fake_cometapi))
    assert_sentence_without_key(caught.value, fake_cometapi.key)
    assert "[redacted]" in str(caught.value)


# -- success -------------------------------------------------------------------------------------


def test_success_reads_flags_by_type_whatever_the_order(fake_cometapi):
    provider = provider_for(fake_cometapi)
    image, data = sample()
    expected = {"head_seg": True, "face_seg": False, "cloth_seg": True, "object_seg": True}
    fake_cometapi.set_flags(image.sha256, **expected)
    orders = set()
    for done in range(1, 7):  # the fake shuffles the entries on every answer
        result = provider.check(image, data, CheckContext(threading.Event(), DictMemo()))
        assert result.flags() == expected
        answer = json.loads(result.raw)
        orders.add(tuple(e["type"] for e in answer["data"]["task_result"]["images"]))
        assert answer == json.loads(recorded(fake_cometapi, done)[-1].response_body)
        assert result.cost == "0.2" and result.request_id == answer["request_id"]
        assert set(result.result_urls) == {"head_seg", "cloth_seg", "object_seg"}  # face_seg had url ""
        assert result.faces is None
    assert len(orders) > 1
    assert fake_cometapi.requests[0].json == {"image": base64.b64encode(data).decode()}
    assert fake_cometapi.requests[0].headers["Authorization"] == f"Bearer {fake_cometapi.key}"


def test_answers_without_url_cost_or_request_id(fake_cometapi):
    fake_cometapi.omit_optional = True
    image, data = sample()
    fake_cometapi.set_flags(image.sha256, head_seg=True, face_seg=True, cloth_seg=False, object_seg=True)
    result = provider_for(fake_cometapi).check(image, data, CheckContext(threading.Event(), DictMemo()))
    assert result.flags() == {"head_seg": True, "face_seg": True, "cloth_seg": False, "object_seg": True}
    assert (result.cost, result.request_id, dict(result.result_urls)) == (None, None, {})


def test_unknown_types_are_kept_and_missing_types_are_unknown(fake_cometapi):
    fake_cometapi.extra_types = True
    image, data = sample()
    fake_cometapi.set_flags(image.sha256, head_seg=True, face_seg=None, cloth_seg=False, object_seg=True)
    result = provider_for(fake_cometapi).check(image, data, CheckContext(threading.Event(), DictMemo()))
    assert result.face_seg is None and result.head_seg is True and result.cloth_seg is False
    assert EXTRA_TYPE in result.result_urls and EXTRA_TYPE not in FLAG_TYPES


def test_a_png_sample_is_checked_too(fake_cometapi):
    result = check_once(provider_for(fake_cometapi), "sk_coffee.png")
    assert all(isinstance(flag, bool) for flag in result.flags().values())
    assert recorded(fake_cometapi)[0].billed


# -- transport faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("drop", [Drop(after_body=False), Drop(after_body=True)])
def test_a_dropped_connection_is_outcome_unknown(fake_cometapi, drop):
    fake_cometapi.enqueue("recognize", drop)
    with pytest.raises(OutcomeUnknown) as caught:
        check_once(provider_for(fake_cometapi))
    assert_sentence_without_key(caught.value, fake_cometapi.key)


def test_no_answer_within_the_read_timeout_is_outcome_unknown(fake_cometapi):
    fake_cometapi.enqueue("recognize", Delay(5.0))
    with pytest.raises(OutcomeUnknown):
        check_once(provider_for(fake_cometapi, read_timeout=0.2))


def test_a_body_that_stalls_past_the_read_timeout_is_outcome_unknown(fake_cometapi):
    fake_cometapi.enqueue("recognize", SlowBody(5.0))
    with pytest.raises(OutcomeUnknown):
        check_once(provider_for(fake_cometapi, read_timeout=0.2))


def test_a_closed_port_that_never_answered_stops_the_provider_at_once(fake_cometapi):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ProviderStopped) as caught:
        check_once(provider_for(fake_cometapi, base_url=closed))
    assert "refused" in str(caught.value) and "check the base URL" in str(caught.value)
    assert_sentence_without_key(caught.value, fake_cometapi.key)


def test_a_refusal_after_the_service_answered_is_not_processed(fake_cometapi):
    provider = provider_for(fake_cometapi)
    check_once(provider)
    fake_cometapi.close()  # the service goes away mid-run: worth retrying later
    with pytest.raises(NotProcessed) as caught:
        check_once(provider)
    assert not isinstance(caught.value, ProviderStopped)
    assert_sentence_without_key(caught.value, fake_cometapi.key)


def test_a_cancelled_batch_sends_nothing(fake_cometapi):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        check_once(provider_for(fake_cometapi), cancel=cancel)
    assert fake_cometapi.requests == []


# -- verify, availability, secrecy ------------------------------------------------------------------


def test_verify_with_a_good_key_costs_nothing(fake_cometapi):
    sentence = provider_for(fake_cometapi).verify()
    assert "accepted the key" in sentence and fake_cometapi.base_url in sentence
    assert [r.billed for r in recorded(fake_cometapi)] == [False]


@pytest.mark.parametrize(
    "setup, words",
    [
        ({"key": "wrong-key-abc"}, "rejected the key"),
        ({"base_url_suffix": "/not/the/api"}, "base URL looks wrong"),
        ({"balance_exhausted": True}, "out of balance"),
    ],
)
def test_verify_says_what_is_wrong(fake_cometapi, setup, words):
    fake_cometapi.balance_exhausted = setup.get("balance_exhausted", False)
    base_url = fake_cometapi.base_url + setup.get("base_url_suffix", "")
    provider = provider_for(fake_cometapi, key=setup.get("key"), base_url=base_url)
    with pytest.raises(ProviderStopped) as caught:
        provider.verify()
    assert words in str(caught.value)
    assert_sentence_without_key(caught.value, setup.get("key") or fake_cometapi.key)


def test_no_key_needs_a_key_and_sends_nothing(fake_cometapi):
    provider = CometAPIProvider(ProviderConfig(settings={"base_url": fake_cometapi.base_url}))
    assert provider.availability().state == "needs_key"
    assert "KLING_PREFLIGHT_COMETAPI_KEY" in provider.availability().reason
    with pytest.raises(ProviderStopped):
        check_once(provider)
    assert fake_cometapi.requests == []


def test_a_plain_http_base_url_elsewhere_makes_it_unavailable():
    provider = CometAPIProvider(ProviderConfig(settings={"base_url": "http://vendor.example.com"}, key="k-123456"))
    availability = provider.availability()
    assert availability.state == "unavailable" and "plain http" in availability.reason
    with pytest.raises(ProviderStopped):
        check_once(provider)


def test_the_key_is_not_in_the_repr_of_the_provider_or_its_config(fake_cometapi):
    provider = provider_for(fake_cometapi)
    assert fake_cometapi.key not in repr(provider)
    assert fake_cometapi.key not in repr(provider.config)
    assert fake_cometapi.base_url in repr(provider)


def test_class_attributes_the_runner_and_lists_read():
    assert CometAPIProvider.id == "cometapi"
    assert CometAPIProvider.retries_are_free is False and CometAPIProvider.remote is True
    assert CometAPIProvider.max_outcome_unknown_retries == 0
    assert CometAPIProvider.rate_limit_base_wait == 1.0
    defaults = {spec.name: spec.default for spec in CometAPIProvider.settings_spec}
    assert defaults == {"base_url": CometAPIProvider.default_base_url, "concurrency": 4,
                        "connect_timeout": 5.0, "read_timeout": 60.0}
