"""The fakes themselves, checked with plain ``requests`` calls."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.fakes import (
    COMET_ERRORS,
    USEAPI_ERRORS,
    Delay,
    Drop,
    EndpointCount,
    FakeCometAPI,
    FakeUseAPI,
    Respond,
    SlowBody,
    Succeed,
)
from tests.fakes.cometapi import RECOGNIZE_PATH

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "samples"
TIMEOUT = (5, 10)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def image_bytes(width: int, height: int, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(out, fmt)
    return out.getvalue()


def recognize(fake: FakeCometAPI, body: object, *, key: str | None = None, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {fake.key if key is None else key}"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(fake.base_url + RECOGNIZE_PATH, data=data, headers=headers, timeout=kw.pop("timeout", TIMEOUT), **kw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# --- CometAPI ------------------------------------------------------------------------------


def test_recognize_answers_the_documented_shape(fake_cometapi):
    data = sample("sk_astronaut.png")
    sha = hashlib.sha256(data).hexdigest()
    fake_cometapi.set_flags(sha, head_seg=True, face_seg=True, cloth_seg=False, object_seg=True)

    answer = recognize(fake_cometapi, {"image": b64(data)})

    assert answer.status_code == 200
    body = answer.json()
    assert (body["code"], body["message"]) == (0, "SUCCEED")
    assert body["request_id"] and body["data"]["final_unit_deduction"] == "0.2"
    images = {entry["type"]: entry for entry in body["data"]["task_result"]["images"]}
    assert {kind: entry["is_contain"] for kind, entry in images.items()} == {
        "head_seg": True,
        "face_seg": True,
        "cloth_seg": False,
        "object_seg": True,
    }
    assert images["head_seg"]["url"].startswith("http") and images["cloth_seg"]["url"] == ""
    [record] = fake_cometapi.requests
    assert (record.endpoint, record.status, record.billed) == ("recognize", 200, True)
    assert record.json == {"image": b64(data)}
    assert record.headers["authorization"] == f"Bearer {fake_cometapi.key}"
    assert fake_cometapi.counts() == {"recognize": EndpointCount(requests=1, billed=1)}


def test_types_come_in_varying_order_and_unknown_types_can_be_added(fake_cometapi):
    fake_cometapi.extra_types = True
    payload = {"image": b64(sample("china.jpg"))}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fake_cometapi.key}"
        orders = {
            tuple(e["type"] for e in session.post(fake_cometapi.base_url + RECOGNIZE_PATH, json=payload, timeout=TIMEOUT)
                  .json()["data"]["task_result"]["images"])
            for _ in range(12)
        }
    assert len(orders) > 1
    assert all(set(order) == {"head_seg", "face_seg", "cloth_seg", "object_seg", "hand_seg"} for order in orders)


def test_omit_optional_serves_the_vendor_page_example_shape(fake_cometapi):
    fake_cometapi.omit_optional = True
    body = recognize(fake_cometapi, {"image": b64(sample("china.jpg"))}).json()
    assert "request_id" not in body and "final_unit_deduction" not in body["data"]
    assert all(set(entry) == {"type", "is_contain"} for entry in body["data"]["task_result"]["images"])


def test_default_flags_are_deterministic_per_image(fake_cometapi):
    data = sample("flower.jpg")
    expected = fake_cometapi.flags_for(hashlib.sha256(data).hexdigest())
    for _ in range(2):
        images = recognize(fake_cometapi, {"image": b64(data)}).json()["data"]["task_result"]["images"]
        assert {e["type"]: e["is_contain"] for e in images} == expected


@pytest.mark.parametrize("key", [None, "wrong"])
def test_a_missing_or_wrong_key_gets_the_gateway_401_and_consumes_no_action(fake_cometapi, key):
    fake_cometapi.enqueue("recognize", Respond(503))
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    answer = requests.post(fake_cometapi.base_url + RECOGNIZE_PATH, json={"image": "x"}, headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["type"] == "comet_api_error" and "request id:" in error["message"]
    assert fake_cometapi.queued("recognize") == 1
    assert not fake_cometapi.requests[0].billed


@pytest.mark.parametrize(
    "image, status, code",
    [
        (None, 500, "invalid_request"),  # a body that is not JSON
        ({}, 400, 1200),
        ({"image": 42}, 400, 1200),
        ({"image": "data:image/png;base64," + b64(sample("sk_camera.png"))}, 400, 1201),
        ({"image": "not base64 at all!"}, 400, 1201),
        ({"image": b64(sample("astronaut_thumbnail.jpg"))}, 400, 1201),  # 200 × 200
        ({"image": b64(sample("temple_panorama.jpg"))}, 400, 1201),  # wider than 2.5:1
        ({"image": b64(sample("flower.gif"))}, 400, 1201),
        ({"image": b64(sample("hopper_truncated.jpg"))}, 400, 1201),
        ({"image": b64(sample("notes_not_a_photo.jpg"))}, 400, 1201),
        ({"image": b64(b"\xff" * (10 * 1024 * 1024 + 1))}, 400, 1201),
    ],
)
def test_bad_requests_are_refused_like_the_vendor(fake_cometapi, image, status, code):
    answer = recognize(fake_cometapi, b"{not json" if image is None else image)
    assert answer.status_code == status
    body = answer.json()
    assert (body["error"]["code"] if "error" in body else body["code"]) == code
    assert not fake_cometapi.requests[0].billed


@pytest.mark.parametrize("size, status", [((750, 300), 200), ((300, 750), 200), ((751, 300), 400), ((300, 299), 400)])
def test_size_limits_are_inclusive(fake_cometapi, size, status):
    assert recognize(fake_cometapi, {"image": b64(image_bytes(*size, "PNG"))}).status_code == status


def test_an_image_url_is_answered_from_its_registered_flags(fake_cometapi):
    url = "https://example.com/portrait.jpg"
    fake_cometapi.set_flags(url, head_seg=True, face_seg=None, cloth_seg=True, object_seg=True)
    images = recognize(fake_cometapi, {"image": url}).json()["data"]["task_result"]["images"]
    assert {e["type"]: e["is_contain"] for e in images} == {"head_seg": True, "cloth_seg": True, "object_seg": True}


def test_a_wrong_path_gets_an_html_404(fake_cometapi):
    answer = requests.post(fake_cometapi.base_url + "/v1/kling/videos/image-recognize", json={}, timeout=TIMEOUT)
    assert answer.status_code == 404 and answer.headers["Content-Type"].startswith("text/html")
    assert fake_cometapi.requests[0].endpoint == "unknown"


def test_account_toggles(fake_cometapi):
    payload = {"image": b64(sample("china.jpg"))}
    fake_cometapi.balance_exhausted = True
    answer = recognize(fake_cometapi, payload)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "insufficient_user_quota")
    fake_cometapi.balance_exhausted, fake_cometapi.arrears = False, True
    answer = recognize(fake_cometapi, payload)
    assert (answer.status_code, answer.json()["code"]) == (429, 1101)
    fake_cometapi.arrears = False
    assert recognize(fake_cometapi, payload).status_code == 200


@pytest.mark.parametrize("name", sorted(COMET_ERRORS))
def test_every_canned_comet_error_is_served_as_written(fake_cometapi, name):
    canned = COMET_ERRORS[name]
    fake_cometapi.enqueue("recognize", canned)
    answer = recognize(fake_cometapi, {"image": "x"}, allow_redirects=False)
    assert (answer.status_code, answer.content) == (canned.status, canned.body)
    assert all(answer.headers[name] == value for name, value in canned.headers)


@pytest.mark.parametrize("name", sorted(USEAPI_ERRORS))
def test_every_canned_useapi_error_is_served_as_written(fake_useapi, name):
    canned = USEAPI_ERRORS[name]
    fake_useapi.enqueue("faces", canned)
    answer = requests.post(
        fake_useapi.base_url + "/v1/kling/images/recognize-faces",
        json={},
        headers={"Authorization": f"Bearer {fake_useapi.key}"},
        timeout=TIMEOUT,
    )
    assert (answer.status_code, answer.content) == (canned.status, canned.body)


def test_queued_actions_are_used_in_order_then_normal_processing(fake_cometapi):
    payload = {"image": b64(sample("china.jpg"))}
    fake_cometapi.enqueue("recognize", Respond(503, "busy"), Respond(418, {"why": "scripted"}, billed=True), Succeed())
    with pytest.raises(ValueError):
        fake_cometapi.enqueue("faces", Succeed())
    statuses = [recognize(fake_cometapi, payload).status_code for _ in range(4)]
    assert statuses == [503, 418, 200, 200]
    assert [r.billed for r in fake_cometapi.requests] == [False, True, True, True]
    assert fake_cometapi.queued("recognize") == 0


@pytest.mark.parametrize("after_body", [False, True])
def test_drop_closes_without_an_answer(fake_cometapi, after_body):
    fake_cometapi.enqueue("recognize", Drop(after_body=after_body))
    payload = {"image": b64(sample("china.jpg"))}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fake_cometapi.key}"
        with pytest.raises(requests.ConnectionError):
            session.post(fake_cometapi.base_url + RECOGNIZE_PATH, json=payload, timeout=TIMEOUT)
        assert session.post(fake_cometapi.base_url + RECOGNIZE_PATH, json=payload, timeout=TIMEOUT).status_code == 200
    dropped = fake_cometapi.requests[0]
    assert dropped.status is None and dropped.billed is after_body
    assert (dropped.body != b"") is after_body


def test_delay_then_answers_and_close_ends_a_long_delay():
    with FakeCometAPI() as fake:
        fake.enqueue("recognize", Delay(0.05, then=Respond(202, "late")), Delay(60))
        assert recognize(fake, {"image": "x"}).text == "late"
        with pytest.raises(requests.ReadTimeout):
            recognize(fake, {"image": "x"}, timeout=(5, 0.2))
    # close() returned although the second request was told to wait a minute
    assert [r.status for r in fake.requests] == [202, None]


def test_slow_body_still_delivers_the_whole_answer(fake_cometapi):
    fake_cometapi.enqueue("recognize", SlowBody(0.1), SlowBody(0.05, then=Respond(500, "x" * 100)))
    body = recognize(fake_cometapi, {"image": b64(sample("china.jpg"))}).json()
    assert body["code"] == 0 and len(body["data"]["task_result"]["images"]) == 4
    answer = recognize(fake_cometapi, {"image": "x"})
    assert (answer.status_code, answer.text) == (500, "x" * 100)


def test_a_short_body_breaks_the_answer(fake_cometapi):
    fake_cometapi.enqueue("recognize", Respond(200, b'{"code": 0', {"Content-Length": "100"}, billed=True))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        recognize(fake_cometapi, {"image": "x"})


def test_random_faults_are_reproducible():
    mix = {Respond(500, "boom"): 0.3, COMET_ERRORS["concurrency_1303"]: 0.2}
    runs = []
    for _ in range(2):
        with FakeCometAPI() as fake:
            fake.set_faults(7, mix)
            runs.append([recognize(fake, {"image": "https://example.com/a.jpg"}).status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert {200, 429, 500} == set(runs[0])
    with pytest.raises(ValueError):
        FakeCometAPI().set_faults(1, {Drop(): 0.7, Respond(500): 0.4})


def test_over_max_concurrency_answers_kling_1303():
    outcome: list[object] = []
    with FakeCometAPI(max_concurrency=1) as fake:
        fake.enqueue("recognize", Delay(60), Respond(299))

        def first() -> None:
            try:
                outcome.append(recognize(fake, {"image": "x"}))
            except requests.ConnectionError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=first)
        worker.start()
        wait_until(lambda: fake.in_flight == 1, "the first request to be in flight")
        refused = recognize(fake, {"image": "x"})
        assert (refused.status_code, refused.json()["code"]) == (429, 1303)
        assert fake.queued("recognize") == 1  # the refused request used no action
        assert fake.peak_concurrency == 1
    worker.join(timeout=10)
    assert not worker.is_alive() and isinstance(outcome[0], requests.ConnectionError)


def test_close_joins_every_thread_even_with_pooled_connections_open():
    session = requests.Session()
    try:
        fake = FakeCometAPI().start()
        prefix = fake.thread_prefix
        recognize_url = fake.base_url + RECOGNIZE_PATH
        for _ in range(3):
            session.post(recognize_url, json={}, headers={"Authorization": f"Bearer {fake.key}"}, timeout=TIMEOUT)
        assert any(t.name.startswith(prefix) for t in threading.enumerate())
        fake.close()
        assert not any(t.name.startswith(prefix) for t in threading.enumerate())
    finally:
        session.close()


def test_reset_forgets_requests_and_scripts(fake_cometapi):
    fake_cometapi.enqueue("recognize", Respond(500))
    fake_cometapi.set_faults(1, {Respond(502): 1.0})
    fake_cometapi.reset()
    assert fake_cometapi.requests == [] and fake_cometapi.queued("recognize") == 0
    assert recognize(fake_cometapi, {"image": "https://example.com/x.png"}).status_code == 200


# --- useapi --------------------------------------------------------------------------------


def upload(fake: FakeUseAPI, data: bytes, content_type: str, *, email: str | None = None) -> requests.Response:
    params = {} if email is None else {"email": email}
    return requests.post(
        fake.base_url + "/v1/kling/assets/",
        params=params,
        data=data,
        headers={"Authorization": f"Bearer {fake.key}", "Content-Type": content_type},
        timeout=TIMEOUT,
    )


def faces(fake: FakeUseAPI, body: dict) -> requests.Response:
    return requests.post(
        fake.base_url + "/v1/kling/images/recognize-faces",
        json=body,
        headers={"Authorization": f"Bearer {fake.key}"},
        timeout=TIMEOUT,
    )


def test_upload_then_recognize_faces(fake_useapi):
    data = sample("mpl_grace_hopper.jpg")
    sha = hashlib.sha256(data).hexdigest()
    fake_useapi.set_faces(sha, [(182, 121, 171, 211)])

    uploaded = upload(fake_useapi, data, "image/jpeg", email="creator@example.com")
    assert uploaded.status_code == 200
    asset = uploaded.json()
    assert asset["status"] == 3 and asset["message"] == "" and asset["fileName"].endswith(".jpg")
    assert requests.get(asset["url"], timeout=TIMEOUT).content == data

    found = faces(fake_useapi, {"email": "creator@example.com", "imageReference": asset["url"]})
    assert found.status_code == 200
    body = found.json()
    assert body["mediaInfo"] == {"type": "image", "duration": 0, "width": 512, "height": 600}
    [item] = body["faceItems"]
    bound = {a["name"]: a["value"] for a in item["arguments"]}["face_bound"]
    assert json.loads(bound) == {"x": 182, "y": 121, "width": 171, "height": 211}
    assert [r["name"] for r in item["resources"]] == ["face", "face_feature"]
    assert fake_useapi.uploads == [sha]
    assert fake_useapi.counts()["upload"] == EndpointCount(1, 1)


@pytest.mark.parametrize("shape", ["empty", "missing"])
def test_no_faces_comes_in_both_shapes(fake_useapi, shape):
    fake_useapi.no_faces_shape = shape
    fake_useapi.omit_file_name = True
    asset = upload(fake_useapi, sample("sk_coffee.png"), "image/png").json()
    assert "fileName" not in asset and asset["url"].endswith(".png")
    body = faces(fake_useapi, {"imageReference": asset["url"]}).json()
    assert body.get("faceItems", "missing") == ([] if shape == "empty" else "missing")


def test_upload_checks(fake_useapi):
    gif = upload(fake_useapi, sample("flower.gif"), "image/gif")
    assert gif.status_code == 400
    assert gif.json()["error"].startswith("Content-Type image/gif is not supported. Valid values: image/png,image/jpeg")
    assert upload(fake_useapi, sample("flower.jpg"), "multipart/form-data; boundary=x").status_code == 400
    assert upload(fake_useapi, sample("sk_coffee.png"), "image/jpeg").status_code == 400  # PNG sent as JPEG
    assert upload(fake_useapi, sample("astronaut_thumbnail.jpg"), "image/jpeg").status_code == 400
    assert upload(fake_useapi, sample("hopper_truncated.jpg"), "image/jpeg").status_code == 400
    unknown = upload(fake_useapi, sample("flower.jpg"), "image/jpeg", email="nobody@example.com")
    assert unknown.status_code == 404 and unknown.text.startswith("Account configuration not found")
    assert fake_useapi.uploads == []
    assert not any(r.billed for r in fake_useapi.requests)


def test_email_is_required_with_several_accounts():
    with FakeUseAPI(accounts=("a@example.com", "b@example.com")) as fake:
        assert upload(fake, sample("flower.jpg"), "image/jpeg").status_code == 404
        assert upload(fake, sample("flower.jpg"), "image/jpeg", email="b@example.com").status_code == 200


def test_faces_checks(fake_useapi):
    assert faces(fake_useapi, {}).json() == {"error": "Parameter imageReference is required"}
    assert faces(fake_useapi, {"imageReference": "https://example.com/a.jpg"}).status_code == 400
    never_uploaded = f"{fake_useapi.base_url}/assets/{'0' * 64}.jpg"
    assert faces(fake_useapi, {"imageReference": never_uploaded}).status_code == 400
    wrong_key = requests.post(
        fake_useapi.base_url + "/v1/kling/images/recognize-faces",
        json={},
        headers={"Authorization": "Bearer nope"},
        timeout=TIMEOUT,
    )
    assert (wrong_key.status_code, wrong_key.json()) == (401, {"error": "Unauthorized", "code": 401})
    fake_useapi.subscription_required = True
    assert faces(fake_useapi, {}).json() == {"error": "Subscription required", "code": 402}
    assert upload(fake_useapi, sample("flower.jpg"), "image/jpeg").status_code == 402


def test_useapi_busy_answer_is_429(fake_useapi):
    fake_useapi.max_concurrency = 0
    answer = faces(fake_useapi, {})
    assert answer.status_code == 429 and "error" in answer.json()


# --- the command line ----------------------------------------------------------------------


def test_main_runs_a_fake_in_the_foreground():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes", "cometapi", "--key", "demo-key", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    printed: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [printed.put(line.strip()) for line in proc.stdout])
    reader.start()
    try:
        lines = [printed.get(timeout=30), printed.get(timeout=30)]
        assert lines[0].startswith("cometapi fake: http://127.0.0.1:") and lines[1] == "key: demo-key"
        base_url = lines[0].split(": ", 1)[1]
        answer = requests.post(
            base_url + RECOGNIZE_PATH,
            json={"image": "https://example.com/a.jpg"},
            headers={"Authorization": "Bearer demo-key"},
            timeout=TIMEOUT,
        )
        assert answer.json()["code"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        proc.stdout.close()
    assert proc.returncode == 0
