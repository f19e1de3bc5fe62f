"""UseAPIProvider against the fake useapi.net server: the error table on both calls, uploads
made once, face parsing, the email setting, transport faults, verify() and the key's secrecy."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from core.errors import (
    Cancelled,
    CreatedMaybe,
    ImageRejected,
    OutcomeUnknown,
    ProtocolError,
    ProviderError,
    ProviderStopped,
    RateLimited,
)
from core.models import Face
from core.providers import CheckContext, DictMemo, ProviderConfig
from plugins.useapi import UPLOAD_MEMO, UseAPIProvider
from tests.fakes.server import Drop, Respond
from tests.fakes.useapi import DEFAULT_ACCOUNT, USEAPI_ERRORS, FakeUseAPI
from tests.plugins.test_cometapi import assert_row, assert_sentence_without_key, recorded, sample

HOPPER_BOX = (182, 121, 171, 211)


def provider_for(fake, *, key: str | None = None, **settings) -> UseAPIProvider:
    settings = {"base_url": fake.base_url, "read_timeout": 5.0, **settings}
    return UseAPIProvider(ProviderConfig(settings=settings, key=key or fake.key, key_source="session"))


def check_once(provider: UseAPIProvider, name: str = "mpl_grace_hopper.jpg", memo=None, cancel=None):
    image, data = sample(name)
    return provider.check(image, data, CheckContext(cancel=cancel or threading.Event(), memo=memo or DictMemo()))


def of(fake, endpoint: str, count: int):
    return [r for r in recorded(fake, count) if r.endpoint == endpoint]


# -- the error table, on the upload and on the face call ------------------------------------------

ERROR_TABLE = {
    "bad_request_400": (ImageRejected, "refused the request"),
    "bad_type_400": (ImageRejected, "refused the request"),
    "unauthorized_401": (ProviderStopped, "rejected the API token"),
    "subscription_402": (ProviderStopped, "subscription is missing"),
    "account_404": (ProviderStopped, f"does not know the account {DEFAULT_ACCOUNT}: set the email in settings"),
    "not_found_404": (ProviderStopped, "base URL looks wrong"),
    "busy_429": (RateLimited, "slow down"),
    "moderation_500": (OutcomeUnknown, "moderation"),
    "fault_500": (OutcomeUnknown, "may have been processed"),
}


def test_the_table_covers_every_canned_error():
    assert set(ERROR_TABLE) == set(USEAPI_ERRORS)


@pytest.mark.parametrize("endpoint", ["upload", "faces"])
@pytest.mark.parametrize("name", sorted(ERROR_TABLE))
def test_each_error_row_is_classified(fake_useapi, name, endpoint):
    fake_useapi.enqueue(endpoint, USEAPI_ERRORS[name])
    with pytest.raises(ProviderError) as caught:
        check_once(provider_for(fake_useapi, email=DEFAULT_ACCOUNT))
    cls, words = ERROR_TABLE[name]
    if endpoint == "upload" and cls is OutcomeUnknown:
        cls = CreatedMaybe  # an upload may have made an asset: never retried on its own
    assert_row(caught.value, USEAPI_ERRORS[name], cls, words, key=fake_useapi.key)
    assert len(of(fake_useapi, endpoint, 1 if endpoint == "upload" else 2)) == 1  # one attempt
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after is None  # useapi sends no Retry-After: the runner's 10 s applies


def test_retry_after_is_honoured_when_sent(fake_useapi):
    fake_useapi.enqueue("upload", Respond(429, {"error": "busy"}, {"Retry-After": "30"}))
    with pytest.raises(RateLimited) as caught:
        check_once(provider_for(fake_useapi))
    assert caught.value.retry_after == 30.0


def test_a_bare_404_without_an_email_asks_for_one():
    with FakeUseAPI(accounts=("a@example.com", "b@example.com")) as fake:
        with pytest.raises(ProviderStopped) as caught:
            check_once(provider_for(fake))
        assert "set the email of one of your accounts in settings" in str(caught.value)
        assert fake.uploads == []


@pytest.mark.parametrize(
    "faces_answer",
    [
        Respond(200, "OK"),
        Respond(200, {"status": 0, "faceItems": "none"}),
        Respond(200, {"status": 0, "faceItems": [{"name": "face_0", "arguments": []}]}),
        Respond(200, {"status": 0, "faceItems": [{"arguments": [{"name": "face_bound", "value": "{x:1"}]}]}),
        Respond(200, {"status": 0, "faceItems": [{"arguments": [{"name": "face_bound", "value": {"x": 1}}]}]}),
        Respond(200, {"status": 7, "message": "recognition failed"}),
    ],
    ids=["text", "items-not-a-list", "no-face-bound", "bound-not-json", "bound-incomplete", "status-not-0"],
)
def test_unreadable_face_answers_are_protocol_errors(fake_useapi, faces_answer):
    fake_useapi.enqueue("faces", faces_answer)
    with pytest.raises(ProtocolError) as caught:
        check_once(provider_for(fake_useapi))
    assert_sentence_without_key(caught.value, fake_useapi.key)


def test_an_upload_answer_without_a_url_is_a_protocol_error(fake_useapi):
    fake_useapi.enqueue("upload", Respond(200, {"status": 3, "message": ""}))
    memo = DictMemo()
    with pytest.raises(ProtocolError):
        check_once(provider_for(fake_useapi), memo=memo)
    assert memo.get(sample()[0].sha256, UPLOAD_MEMO) is None


# -- success ---------------------------------------------------------------------------------------


def test_a_face_is_read_with_its_box_and_crops(fake_useapi):
    image, data = sample()
    fake_useapi.set_faces(image.sha256, [HOPPER_BOX])
    memo = DictMemo()
    result = provider_for(fake_useapi).check(image, data, CheckContext(threading.Event(), memo))
    url = fake_useapi.asset_url(image.sha256, "JPEG")
    assert result.flags() == {"head_seg": True, "face_seg": True, "cloth_seg": None, "object_seg": None}
    assert len(result.faces) == 1
    face = result.faces[0]
    assert (face.x, face.y, face.width, face.height) == HOPPER_BOX
    crops = f"{fake_useapi.base_url}/assets/{image.sha256}"
    assert face.crops == (f"{crops}/face_0.jpg", f"{crops}/face_feature_0.jpg")
    raw = json.loads(result.raw)
    assert raw["upload"]["url"] == url and raw["imageReference"] == url
    assert raw["faces"] == json.loads(of(fake_useapi, "faces", 2)[0].response_body)
    assert memo.get(image.sha256, UPLOAD_MEMO) == url
    assert result.cost is None  # free


@pytest.mark.parametrize("shape", ["empty", "missing"])
def test_no_faces_whether_face_items_is_empty_or_missing(fake_useapi, shape):
    fake_useapi.no_faces_shape = shape
    result = check_once(provider_for(fake_useapi), "sk_coffee.png")
    assert result.faces == ()
    assert result.flags() == {"head_seg": None, "face_seg": False, "cloth_seg": None, "object_seg": None}
    assert ("faceItems" in json.loads(result.raw)["faces"]) is (shape == "empty")


def test_a_face_bound_given_as_an_object_is_read_too(fake_useapi):
    item = {"name": "face_0", "resources": [{"name": "face", "type": "image", "url": "https://x/f.jpg"},
                                            {"name": "note", "type": "text", "url": "https://x/n.txt"}],
            "arguments": [{"name": "face_bound", "value": {"x": 10.4, "y": 20, "width": 30, "height": 40.6}}]}
    fake_useapi.enqueue("faces", Respond(200, {"status": 0, "message": "", "faceItems": [item]}))
    result = check_once(provider_for(fake_useapi))
    assert result.faces == (Face(10, 20, 30, 41, crops=("https://x/f.jpg",)),)


@pytest.mark.parametrize("name, content_type", [("coffee_really_a_png.jpg", "image/png"),
                                                ("mpl_grace_hopper.jpg", "image/jpeg"),
                                                ("sk_astronaut.png", "image/png")])
def test_the_upload_says_what_the_content_is_not_what_the_name_says(fake_useapi, name, content_type):
    check_once(provider_for(fake_useapi), name)
    upload = of(fake_useapi, "upload", 2)[0]
    assert upload.headers["Content-Type"] == content_type
    assert upload.body == sample(name)[1]
    assert fake_useapi.uploads == [sample(name)[0].sha256]


def test_an_image_is_uploaded_once_however_often_it_is_checked(fake_useapi):
    provider, memo = provider_for(fake_useapi), DictMemo()
    for _ in range(3):
        check_once(provider, memo=memo)
    assert len(fake_useapi.uploads) == 1
    assert len(of(fake_useapi, "faces", 4)) == 3


def test_the_upload_is_remembered_even_when_the_face_call_fails(fake_useapi):
    provider, memo = provider_for(fake_useapi), DictMemo()
    fake_useapi.enqueue("faces", USEAPI_ERRORS["fault_500"])
    with pytest.raises(OutcomeUnknown):
        check_once(provider, memo=memo)
    check_once(provider, memo=memo)
    assert len(fake_useapi.uploads) == 1


def test_a_format_useapi_refuses_is_rejected_without_a_call(fake_useapi):
    with pytest.raises(ImageRejected) as caught:
        check_once(provider_for(fake_useapi), "flower.gif")
    assert "GIF" in str(caught.value)
    assert fake_useapi.requests == []


@pytest.mark.parametrize("email", ["", DEFAULT_ACCOUNT])
def test_the_email_is_sent_only_when_set(fake_useapi, email):
    check_once(provider_for(fake_useapi, email=email))
    upload, faces = recorded(fake_useapi, 2)
    if email:
        assert upload.query == {"email": email} and faces.json["email"] == email
    else:
        assert upload.query == {} and set(faces.json) == {"imageReference"}


# -- transport faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["upload", "faces"])
def test_a_dropped_connection_is_outcome_unknown(fake_useapi, endpoint):
    fake_useapi.enqueue(endpoint, Drop(after_body=True))
    with pytest.raises(OutcomeUnknown):
        check_once(provider_for(fake_useapi))


@pytest.mark.parametrize("fault", [USEAPI_ERRORS["fault_500"], Drop(after_body=True)])
def test_an_upload_whose_answer_was_lost_is_never_sent_again_on_its_own(fake_useapi, tmp_path, fault):
    """Face recognition is free to retry; an upload is not (each makes an asset). The runner
    retries useapi's unclear failures once, so an upload must say it may have made one."""
    from core.retry import RetryPolicy
    from core.runner import BatchRunner, RunOptions
    from core.store import RowFilter, Store

    fake_useapi.enqueue("upload", fault)
    with pytest.raises(CreatedMaybe) as caught:
        check_once(provider_for(fake_useapi))
    assert "may already be an asset" in caught.value.message and "--retry-failed" in caught.value.message

    photos = tmp_path / "photos"
    photos.mkdir()
    image, data = sample("mpl_grace_hopper.jpg")
    (photos / "hopper.jpg").write_bytes(data)
    uploads_before = len(of(fake_useapi, "upload", 1))
    fake_useapi.enqueue("upload", fault)
    fast = RetryPolicy(base_delay=0.01, fault_base_delay=0.01)
    for _ in BatchRunner(tmp_path / "r.db", provider_for(fake_useapi), RunOptions(retry=fast)).run([photos]):
        pass
    assert len([r for r in fake_useapi.requests if r.endpoint == "upload"]) - uploads_before == 1  # not sent again
    with Store(tmp_path / "r.db") as store:
        (row,) = store.query_rows(RowFilter(provider="useapi"))
    assert row["status"] == "failed" and "may already be an asset" in row["error"]


def test_a_closed_port_that_never_answered_stops_the_provider_at_once(fake_useapi):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ProviderStopped, match="refused"):
        check_once(provider_for(fake_useapi, base_url=closed))


def test_a_cancelled_batch_sends_nothing(fake_useapi):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        check_once(provider_for(fake_useapi), cancel=cancel)
    assert fake_useapi.requests == []


# -- verify, secrecy, attributes -------------------------------------------------------------------


@pytest.mark.parametrize("email", ["", DEFAULT_ACCOUNT])
def test_verify_with_a_good_token_and_account(fake_useapi, email):
    sentence = provider_for(fake_useapi, email=email).verify()
    assert "accepted the token" in sentence and (email in sentence)
    assert not any(r.billed for r in fake_useapi.requests)
    assert fake_useapi.uploads == []


def test_verify_checks_the_email_where_the_face_call_does_not(fake_useapi):
    # The real service refuses a face call without an image before it reads the email;
    # verify() must still notice a wrong one.
    fake_useapi.reference_checked_first = True
    with pytest.raises(ProviderStopped, match="does not know the account stranger@example.com"):
        provider_for(fake_useapi, email="stranger@example.com").verify()
    assert provider_for(fake_useapi, email=DEFAULT_ACCOUNT).verify()
    assert fake_useapi.uploads == []


def test_a_remembered_url_that_stopped_working_is_uploaded_again_once(fake_useapi):
    memo = DictMemo()
    check_once(provider_for(fake_useapi), memo=memo)
    (sha,) = fake_useapi.uploads
    old = memo.get(sha, UPLOAD_MEMO)
    fake_useapi.forget_assets()  # the asset was deleted in Kling: its URL answers 400
    journaled = []
    image, data = sample("mpl_grace_hopper.jpg")
    ctx = CheckContext(cancel=threading.Event(), memo=memo, journal=lambda img, kind: journaled.append((img.sha256, kind)))
    result = provider_for(fake_useapi).check(image, data, ctx)
    assert result.face_seg is False  # answered: the fake knows no face in it
    assert fake_useapi.uploads == [sha, sha]
    assert journaled == [(sha, UPLOAD_MEMO)]  # the new upload was journaled before it went out
    assert memo.get(sha, UPLOAD_MEMO) == old  # the fake gives the same content the same URL
    # A URL that fails again is not uploaded a third time.
    fake_useapi.forget_assets()
    fake_useapi.enqueue("upload", Respond(200, {"status": 3, "url": old + ".gone", "message": ""}))
    with pytest.raises(ImageRejected, match="imageReference"):
        provider_for(fake_useapi).check(image, data, ctx)
    assert fake_useapi.uploads == [sha, sha]


@pytest.mark.parametrize(
    "base_path, doubled",
    [("/v1/kling", "/v1/kling"), ("/v1/kling/", "/v1/kling"), ("/v1", "/v1"), ("/v1/kling/assets", "/v1/kling/assets")],
)
def test_a_base_url_holding_the_api_path_says_which_part_to_remove(fake_useapi, base_path, doubled):
    provider = provider_for(fake_useapi, base_url=fake_useapi.base_url + base_path)
    ready = provider.availability()
    assert not ready.ready
    assert f"remove {doubled}" in ready.reason and f"({fake_useapi.base_url})" in ready.reason
    assert provider_for(fake_useapi, base_url=fake_useapi.base_url + "/proxy").availability().ready


@pytest.mark.parametrize(
    "setup, words",
    [
        ({"key": "wrong-token-xyz"}, "rejected the API token"),
        ({"base_url_suffix": "/nowhere"}, "base URL looks wrong"),
        ({"subscription_required": True}, "subscription"),
        ({"email": "stranger@example.com"}, "does not know the account stranger@example.com"),
    ],
)
def test_verify_says_what_is_wrong(fake_useapi, setup, words):
    fake_useapi.subscription_required = setup.get("subscription_required", False)
    provider = provider_for(
        fake_useapi,
        key=setup.get("key"),
        base_url=fake_useapi.base_url + setup.get("base_url_suffix", ""),
        email=setup.get("email", ""),
    )
    with pytest.raises(ProviderStopped) as caught:
        provider.verify()
    assert words in str(caught.value)
    assert_sentence_without_key(caught.value, setup.get("key") or fake_useapi.key)


def test_the_key_is_not_in_the_repr_of_the_provider_or_its_config(fake_useapi):
    provider = provider_for(fake_useapi)
    assert fake_useapi.key not in repr(provider) and fake_useapi.key not in repr(provider.config)


def test_class_attributes_the_runner_and_lists_read():
    assert UseAPIProvider.id == "useapi" and UseAPIProvider.key_env == "KLING_PREFLIGHT_USEAPI_KEY"
    assert UseAPIProvider.retries_are_free is True
    assert UseAPIProvider.max_outcome_unknown_retries == 1
    assert UseAPIProvider.rate_limit_base_wait == 10.0
    defaults = {spec.name: spec.default for spec in UseAPIProvider.settings_spec}
    assert defaults == {"base_url": UseAPIProvider.default_base_url, "email": "", "concurrency": 2,
                        "connect_timeout": 5.0, "read_timeout": 60.0}
