"""``kling-preflight`` in a subprocess, as a user runs it, against the fake CometAPI and
useapi.net servers: results, what was called and uploaded (from the fakes' request logs),
stopping on a bad key, resuming after kill -9, unclear failures, ``providers --check``,
base URL settings, and the key never written anywhere.

The fakes run in the test process on 127.0.0.1; the command line is pointed at them with
``settings set PROVIDER base_url=...`` and given the key in its environment variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.models import FLAG_TYPES
from tests.conftest import ROOT, SAMPLES, read_export_csv
from tests.fakes.cometapi import COMET_ERRORS, COST, kling_error
from tests.fakes.server import Delay, EndpointCount, RecordedRequest, Respond, Succeed
from tests.fakes.useapi import ASSET_PREFIX, DEFAULT_ACCOUNT
from tests.imagefiles import make_jpeg, make_png

EXE = Path(sys.executable).with_name("kling-preflight")
COMET_ENV = "KLING_PREFLIGHT_COMETAPI_KEY"
USEAPI_ENV = "KLING_PREFLIGHT_USEAPI_KEY"
#: keyring's backend that finds no keychain: the key comes from the environment, and no
#: keychain of the machine running the tests is ever read.
NO_KEYCHAIN = "keyring.backends.fail.Keyring"

FACE_BOXES = {  # from resources/samples/ATTRIBUTION.md
    "sk_astronaut.png": (178, 63, 89, 112),
    "sk_camera.png": (195, 113, 60, 80),
    "mpl_grace_hopper.jpg": (182, 121, 171, 211),
    "fr_obama.jpg": (369, 90, 241, 326),
    "fr_biden.jpg": (416, 175, 292, 396),
}
NO_FACE = ["sk_coffee.png", "sk_chelsea.png", "sk_rocket.png", "china.jpg", "flower.jpg"]
VALID = [*FACE_BOXES, *NO_FACE, "coffee_really_a_png.jpg"]
INVALID = {
    "astronaut_thumbnail.jpg": "too_small",
    "temple_panorama.jpg": "too_wide",
    "flower.gif": "unsupported_format",
    "hopper_truncated.jpg": "truncated",
    "notes_not_a_photo.jpg": "not_an_image",
}
SHA = {name: hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest() for name in [*VALID, *INVALID]}
NAME_OF = {sha: name for name, sha in SHA.items()}
#: The format by content: coffee_really_a_png.jpg is a PNG under a .jpg name.
CONTENT_FORMAT = {name: "PNG" if name.endswith(".png") or name == "coffee_really_a_png.jpg" else "JPEG" for name in VALID}


# -- running the command line ----------------------------------------------------------------


def cli_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user with nothing set up: no keys, no keychain, app data in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KLING_PREFLIGHT_", "PYTHON_KEYRING"))}
    env.update(KLING_PREFLIGHT_HOME=str(home), PYTHON_KEYRING_BACKEND=NO_KEYCHAIN, PYTHONPATH=str(ROOT))
    env.update(extra or {})
    return env


def kp(*args: str, home: Path, env: dict[str, str] | None = None, input: str | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``kling-preflight ARGS`` to the end; stdin is ``input``, else empty (not a terminal)."""
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, env=cli_env(home, env), cwd=home.parent,
        timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL,
    )


def configure(home: Path, provider: str, *assignments: str) -> None:
    result = kp("settings", "set", provider, *assignments, home=home)
    assert result.returncode == 0, result.stderr


def read_csv(path: Path) -> dict[str, dict]:
    return {row["file"]: row for row in read_export_csv(path)}


def db_rows(db: Path, provider: str) -> dict[str, dict]:
    """The results table for one provider, by sha256 (read directly, read-only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return {r["sha256"]: dict(r) for r in conn.execute("select * from results where provider = ?", (provider,))}


def settled(fake, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
    """The fake's log once it holds ``count`` requests (a request answered late, after the
    client gave up, is recorded only when its answer goes out)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while len(fake.requests) < count and time.monotonic() < deadline:
        pause.wait(0.02)
    return fake.requests


def sha_of_comet_request(record: RecordedRequest) -> str | None:
    """The sha256 of the image a CometAPI request carried (None when its body was not read)."""
    image = record.json.get("image") if isinstance(record.json, dict) else None
    if not isinstance(image, str) or not image:
        return None
    try:
        return hashlib.sha256(base64.b64decode(image, validate=True)).hexdigest()
    except binascii.Error:
        return None


def sha_of_useapi_request(record: RecordedRequest) -> str | None:
    """The sha256 of the image an upload carried, or that a face call referred to."""
    if record.endpoint == "upload":
        return hashlib.sha256(record.body).hexdigest() if record.body else None
    reference = record.json.get("imageReference") if isinstance(record.json, dict) else None
    if isinstance(reference, str) and ASSET_PREFIX in reference:
        return reference.rsplit("/", 1)[-1].partition(".")[0]
    return None


def comet_calls(fake) -> Counter:
    return Counter(sha_of_comet_request(r) for r in fake.requests)


def files_holding(folder: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def assert_sentence(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr, stderr
    for w in words:
        assert w in stderr, stderr


def make_photos(folder: Path, count: int) -> dict[str, str]:
    """``count`` distinct valid 400×400 photos, JPEG and PNG alternately; name -> sha256."""
    folder.mkdir(parents=True)
    shas = {}
    for i in range(count):
        path = (make_jpeg if i % 2 else make_png)(folder / f"photo_{i:03d}.{'jpg' if i % 2 else 'png'}", 400, 400)
        shas[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(set(shas.values())) == count
    return shas


# -- 1. CometAPI: the samples -------------------------------------------------------------------


def comet_flags() -> dict[str, dict[str, bool]]:
    """Different flags per image, so that a mixed-up answer cannot pass."""
    return {
        name: {"head_seg": name in FACE_BOXES, "face_seg": name in FACE_BOXES and i != 1,
               "cloth_seg": i % 2 == 0, "object_seg": i % 3 != 2}
        for i, name in enumerate(VALID)
    }


def test_cometapi_scan_gives_the_flags_cost_and_request_ids_and_sends_each_image_once(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    flags = comet_flags()
    for name, f in flags.items():
        fake_cometapi.set_flags(SHA[name], **f)
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    out = tmp_path / "cometapi.csv"
    key = {COMET_ENV: fake_cometapi.key}
    result = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", "--export", str(out), home=home, env=key)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    # One billed call per valid distinct image; invalid files never sent.
    log = fake_cometapi.requests
    assert fake_cometapi.counts() == {"recognize": EndpointCount(len(VALID), len(VALID))}
    assert comet_calls(fake_cometapi) == Counter({SHA[name]: 1 for name in VALID})
    answers = {sha_of_comet_request(r): json.loads(r.response_body) for r in log}

    rows = read_csv(out)
    assert set(rows) == set(VALID) | set(INVALID)
    for name in VALID:
        row, want = rows[name], flags[name]
        assert row["status"] == "checked", row
        assert {flag: row[flag] for flag in FLAG_TYPES} == {f: "yes" if want[f] else "no" for f in FLAG_TYPES}
        assert row["verdict_avatar"] == ("yes" if want["head_seg"] and want["face_seg"] else "no")
        assert row["verdict_tryon"] == ("yes" if want["head_seg"] and want["cloth_seg"] else "no")
        assert row["verdict_asset"] == ("yes" if want["object_seg"] else "no")
        assert row["cost"] == COST
        assert row["request_id"] == answers[SHA[name]]["request_id"]
        assert row["attempts"] == "1"
    for name, code in INVALID.items():
        assert rows[name]["status"] == "invalid"
        assert code in rows[name]["problem_codes"].split(";")

    again = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", home=home, env=key)
    assert again.returncode == 0, again.stderr
    assert len(fake_cometapi.requests) == len(VALID)  # nothing called again


# -- 2. useapi: the samples -----------------------------------------------------------------------


def test_useapi_scan_uploads_each_image_once_with_its_real_type_and_finds_the_faces(fake_useapi, tmp_path):
    home = tmp_path / "home"
    for name, box in FACE_BOXES.items():
        fake_useapi.set_faces(SHA[name], [box])
    configure(home, "useapi", f"base_url={fake_useapi.base_url}", f"email={DEFAULT_ACCOUNT}")
    key = {USEAPI_ENV: fake_useapi.key}
    out = tmp_path / "useapi.json"
    result = kp("scan", str(SAMPLES), "--provider", "useapi", "--yes", "--export", str(out), home=home, env=key)
    assert result.returncode == 0, result.stderr

    assert Counter(fake_useapi.uploads) == Counter({SHA[name]: 1 for name in VALID})
    uploads = [r for r in fake_useapi.requests if r.endpoint == "upload"]
    sent_type = {NAME_OF[sha_of_useapi_request(r)]: r.headers["Content-Type"] for r in uploads}
    assert sent_type == {name: f"image/{CONTENT_FORMAT[name].lower()}" for name in VALID}
    assert sent_type["coffee_really_a_png.jpg"] == "image/png"
    assert all(r.query == {"email": DEFAULT_ACCOUNT} for r in uploads)
    faces_calls = [r for r in fake_useapi.requests if r.endpoint == "faces"]
    assert sorted(r.json["imageReference"] for r in faces_calls) == sorted(
        fake_useapi.asset_url(SHA[name], CONTENT_FORMAT[name]) for name in VALID
    )
    assert all(r.json["email"] == DEFAULT_ACCOUNT for r in faces_calls)

    items = {item["file"]: item for item in json.loads(out.read_text(encoding="utf-8"))}
    assert set(items) == set(VALID) | set(INVALID)
    for name, (x, y, w, h) in FACE_BOXES.items():
        item = items[name]
        assert item["status"] == "checked" and item["face_count"] == 1
        assert item["flags"]["face_seg"] is True
        [face] = item["faces"]
        assert (face["x"], face["y"], face["width"], face["height"]) == (x, y, w, h)
        assert face["crops"] and all(c.startswith(fake_useapi.base_url) for c in face["crops"])
    for name in NO_FACE + ["coffee_really_a_png.jpg"]:
        assert (items[name]["status"], items[name]["face_count"], items[name]["faces"]) == ("checked", 0, [])
        assert items[name]["flags"]["face_seg"] is False
    for name in INVALID:
        assert items[name]["status"] == "invalid"

    calls = len(fake_useapi.requests)
    again = kp("scan", str(SAMPLES), "--provider", "useapi", "--yes", home=home, env=key)
    assert again.returncode == 0, again.stderr
    assert len(fake_useapi.requests) == calls  # nothing called again

    forced = kp("scan", str(SAMPLES), "--provider", "useapi", "--yes", "--force", home=home, env=key)
    assert forced.returncode == 0, forced.stderr
    assert fake_useapi.counts()["faces"].requests == 2 * len(VALID)  # faces asked again...
    assert fake_useapi.counts()["upload"].requests == len(VALID)  # ...about the uploads made before
    assert Counter(fake_useapi.uploads) == Counter({SHA[name]: 1 for name in VALID})


# -- 4. what condemns the provider stops it after one call ---------------------------------------

STOPPERS = {
    # name: (fake fixture, what to break, env var, words the user reads)
    "cometapi-wrong-key": ("fake_cometapi", "key", COMET_ENV, "CometAPI rejected the key"),
    "cometapi-wrong-base-url": ("fake_cometapi", "base_url", COMET_ENV, "the base URL looks wrong"),
    "useapi-wrong-key": ("fake_useapi", "key", USEAPI_ENV, "useapi rejected the API token"),
    "useapi-no-subscription": ("fake_useapi", "subscription", USEAPI_ENV, "subscription is missing or has expired"),
}


def run_with_breakage(case: str, request, home: Path) -> tuple[object, subprocess.CompletedProcess]:
    """A scan of the samples with the provider broken as ``case`` says; returns the fake and the run."""
    fixture, breakage, env_var, _ = STOPPERS[case]
    fake = request.getfixturevalue(fixture)
    provider = fixture.removeprefix("fake_")
    # Real networks answer after a while: every worker has sent its call by the time the
    # first answer arrives, unless the runner holds the others back.
    fake.latency = 0.2
    configure(home, provider, f"base_url={fake.base_url}{'/v9' if breakage == 'base_url' else ''}")
    if breakage == "subscription":
        fake.subscription_required = True
    key = "wrong-" + fake.key[::-1] if breakage == "key" else fake.key
    return fake, kp("scan", str(SAMPLES), "--provider", provider, "--yes", home=home, env={env_var: key})


@pytest.mark.parametrize("case", sorted(STOPPERS))
def test_what_condemns_the_provider_stops_it_and_blames_no_image(case, request, tmp_path):
    fixture, breakage, env_var, words = STOPPERS[case]
    provider = fixture.removeprefix("fake_")
    home = tmp_path / "home"
    fake, bad = run_with_breakage(case, request, home)

    assert bad.returncode == 1, bad.stderr
    assert_sentence(bad.stderr, words, "The remaining images were not sent.")
    assert fake.key[::-1] not in bad.stderr + bad.stdout and fake.key not in bad.stderr + bad.stdout
    calls = len(settled(fake, 1))
    assert calls == 1, f"{calls} calls were made before the provider stopped"
    statuses = Counter(r["status"] for r in db_rows(home / "results.db", provider).values())
    assert statuses["failed"] == 0 and statuses["checked"] == 0  # nothing blamed on the images

    fake.latency = 0
    if breakage == "subscription":
        fake.subscription_required = False
    configure(home, provider, f"base_url={fake.base_url}")
    fixed = kp("scan", str(SAMPLES), "--provider", provider, "--yes", home=home, env={env_var: fake.key})
    assert fixed.returncode == 0, fixed.stderr
    rows = db_rows(home / "results.db", provider)
    assert sorted(sha for sha, r in rows.items() if r["status"] == "checked") == sorted(SHA[n] for n in VALID)


# -- 5. resume after kill -9 ----------------------------------------------------------------------


def wait_for(condition, proc: subprocess.Popen, timeout: float = 30) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline, "the run did not get far enough"
        pause.wait(0.02)


def checked_count(db: Path, provider: str) -> int:
    try:
        return sum(r["status"] == "checked" for r in db_rows(db, provider).values())
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def start_scan(folder: Path, home: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EXE), "scan", str(folder), "--yes", *args], env=cli_env(home, env), cwd=home.parent,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def kill_9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def assert_one_result_per_image(db: Path, provider: str, shas) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        per_image = Counter(sha for (sha,) in conn.execute("select sha256 from results where provider = ?", (provider,)))
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    assert per_image == Counter(set(shas))
    rows = db_rows(db, provider)
    assert {r["status"] for r in rows.values()} == {"checked"}
    return rows


@pytest.mark.slow
def test_cometapi_resume_after_kill_9_sends_nothing_that_was_recorded(fake_cometapi, tmp_path):
    photos = make_photos(tmp_path / "photos", 30)
    home = tmp_path / "home"
    db = home / "results.db"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}", "concurrency=2")
    key = {COMET_ENV: fake_cometapi.key}
    fake_cometapi.latency = 0.3
    proc = start_scan(tmp_path / "photos", home, key, "--provider", "cometapi")
    try:
        wait_for(lambda: checked_count(db, "cometapi") >= 6, proc)
        kill_9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = db_rows(db, "cometapi")
    assert 6 <= len(before) < len(photos), "the kill should land mid-run"
    settled_calls = len(fake_cometapi.requests)
    fake_cometapi.latency = 0
    resumed = kp("scan", str(tmp_path / "photos"), "--provider", "cometapi", "--yes", home=home, env=key)
    assert "Traceback" not in resumed.stderr, resumed.stderr

    # The calls in flight at the kill were journaled: their outcome is unknown, so they are
    # failed "may have been billed", and not sent again without --retry-failed.
    resumed_rows = db_rows(db, "cometapi")
    unknown = {sha for sha, r in resumed_rows.items() if r["status"] == "failed"}
    assert 1 <= len(unknown) <= 2 and unknown.isdisjoint(before)
    assert all("may have been billed" in resumed_rows[sha]["error"] for sha in unknown)
    assert "in flight when an earlier run was interrupted" in resumed.stdout
    settled(fake_cometapi, settled_calls + len(photos) - len(before) - len(unknown))
    calls = comet_calls(fake_cometapi)
    assert {sha: calls[sha] for sha in before} == {sha: 1 for sha in before}  # none sent again
    assert all(calls[sha] <= 1 for sha in unknown)  # in flight at the kill: sent once at most

    retried = kp("scan", str(tmp_path / "photos"), "--provider", "cometapi", "--retry-failed", "--yes", home=home, env=key)
    assert retried.returncode == 0, retried.stderr
    after = assert_one_result_per_image(db, "cometapi", photos.values())
    assert {sha: after[sha]["checked_at"] for sha in before} == {sha: r["checked_at"] for sha, r in before.items()}
    calls = comet_calls(fake_cometapi)
    assert {sha: calls[sha] for sha in before} == {sha: 1 for sha in before}
    assert set(calls) - {None} == set(photos.values())  # None: a body cut off by the kill


@pytest.mark.slow
def test_useapi_resume_after_kill_9_uploads_nothing_twice(fake_useapi, tmp_path):
    photos = make_photos(tmp_path / "photos", 8)
    home = tmp_path / "home"
    db = home / "results.db"
    configure(home, "useapi", f"base_url={fake_useapi.base_url}", "concurrency=2")
    key = {USEAPI_ENV: fake_useapi.key}
    # Four images go through. The next two take a while to upload (as big files do), so the
    # four results are saved before those uploads end; then their face calls hang.
    fake_useapi.enqueue("upload", *[Succeed()] * 4, Delay(0.6), Delay(0.6))
    fake_useapi.enqueue("faces", *[Succeed()] * 4, Delay(30.0), Delay(30.0))
    proc = start_scan(tmp_path / "photos", home, key, "--provider", "useapi")
    try:
        wait_for(lambda: checked_count(db, "useapi") >= 4 and len(fake_useapi.uploads) >= 6
                 and fake_useapi.in_flight == 2, proc)
        threading.Event().wait(1.0)  # five flush intervals: whatever the runner saves, it has saved
        kill_9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(db_rows(db, "useapi")) == 4
    resumed = kp("scan", str(tmp_path / "photos"), "--provider", "useapi", "--yes", home=home, env=key)
    assert resumed.returncode == 0, resumed.stderr
    assert_one_result_per_image(db, "useapi", photos.values())
    assert Counter(fake_useapi.uploads) == Counter(set(photos.values()))


# -- 6. unclear (maybe billed) failures ----------------------------------------------------------

AMBIGUOUS = [
    COMET_ERRORS["gateway_500"],
    COMET_ERRORS["bad_gateway_502_html"],
    COMET_ERRORS["gateway_timeout_504_empty"],
    COMET_ERRORS["cloudflare_524_html"],
    Delay(1.0),  # answered (and billed) after the client's 0.5 s read timeout
]


def test_cometapi_unclear_failures_fail_after_one_call_and_retry_failed_takes_exactly_those(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}", "read_timeout=0.5")
    key = {COMET_ENV: fake_cometapi.key}
    fake_cometapi.enqueue("recognize", *AMBIGUOUS)
    first = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", home=home, env=key)
    assert first.returncode == 1, first.stderr
    assert_sentence(first.stderr)
    assert "Failed (retry with --retry-failed)" in first.stdout

    log = settled(fake_cometapi, len(VALID))
    assert len(log) == len(VALID)
    assert comet_calls(fake_cometapi) == Counter({SHA[n]: 1 for n in VALID})  # no retry
    rows = db_rows(home / "results.db", "cometapi")
    failed = {sha for sha, r in rows.items() if r["status"] == "failed"}
    answered_5xx = {sha_of_comet_request(r) for r in log if r.status and r.status >= 500}
    assert len(failed) == len(AMBIGUOUS) and answered_5xx < failed
    assert {rows[sha]["error_code"] for sha in failed} == {"outcome_unknown"}
    assert all(rows[sha]["attempts"] == 1 for sha in failed)
    [timed_out] = failed - answered_5xx
    assert "did not answer within 0.5 s" in rows[timed_out]["error"]

    retried = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", "--retry-failed", home=home, env=key)
    assert retried.returncode == 0, retried.stderr
    assert comet_calls(fake_cometapi) - Counter({SHA[n]: 1 for n in VALID}) == Counter(failed)
    assert {r["status"] for r in db_rows(home / "results.db", "cometapi").values() if r["valid"]} == {"checked"}


def test_cometapi_retry_ambiguous_retries_an_unclear_failure(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    fake_cometapi.enqueue("recognize", COMET_ERRORS["gateway_500"])
    result = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", "--retry-ambiguous",
                home=home, env={COMET_ENV: fake_cometapi.key})
    assert result.returncode == 0, result.stderr
    log = fake_cometapi.requests
    [hit] = [sha_of_comet_request(r) for r in log if r.status == 500]
    assert comet_calls(fake_cometapi) == Counter({SHA[n]: 1 for n in VALID}) + Counter([hit])
    assert db_rows(home / "results.db", "cometapi")[hit]["attempts"] == 2


def test_rate_limits_with_retry_after_0_are_retried_for_free(fake_cometapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    now = {"Retry-After": "0"}
    fake_cometapi.enqueue("recognize", kling_error(429, 1303, "parallel task over resource pack limit", headers=now),
                          Respond(429, "Too Many Requests", now))
    result = kp("scan", str(SAMPLES), "--provider", "cometapi", "--yes", home=home, env={COMET_ENV: fake_cometapi.key})
    assert result.returncode == 0, result.stderr
    assert len(fake_cometapi.requests) == len(VALID) + 2
    billed = Counter(sha_of_comet_request(r) for r in fake_cometapi.requests if r.billed)
    assert billed == Counter({SHA[n]: 1 for n in VALID})


# -- 8. the key is never written anywhere -------------------------------------------------------


@pytest.mark.parametrize("provider", ["cometapi", "useapi"])
def test_the_key_is_in_no_file_and_no_output(provider, request, tmp_path):
    fake = request.getfixturevalue(f"fake_{provider}")
    env_var = COMET_ENV if provider == "cometapi" else USEAPI_ENV
    home = tmp_path / "home"
    configure(home, provider, f"base_url={fake.base_url}")
    # A careless server that echoes the token in an error: its words are kept in the database.
    if provider == "cometapi":
        fake.enqueue("recognize", kling_error(400, 1201, f"image invalid (Authorization: Bearer {fake.key})"))
    else:
        fake.enqueue("upload", Respond(400, {"error": f"cannot upload for token {fake.key}"}))
    outputs = []
    for args in (
        ["-v", "scan", str(SAMPLES), "--provider", provider, "--yes", "--export", str(tmp_path / "run.csv")],
        ["-v", "export", "--out", str(tmp_path / "all.json")],
        ["-v", "providers", "--check"],
        ["keys", "status"],
    ):
        result = kp(*args, home=home, env={env_var: fake.key})
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    wrong_key = "wrong-" + fake.key[::-1]
    bad = kp("-v", "scan", str(SAMPLES), "--provider", provider, "--yes", "--force", home=home, env={env_var: wrong_key})
    assert bad.returncode == 1, bad.stderr
    outputs.append(bad.stdout + bad.stderr)

    rows = db_rows(home / "results.db", provider)
    assert any(r["status"] == "rejected" and r["raw"] for r in rows.values())  # the echo was kept, scrubbed
    assert (home / "logs" / "kling-preflight.log").stat().st_size > 0
    for secret in (fake.key, wrong_key):
        assert files_holding(tmp_path, secret) == []
        assert not any(secret in text for text in outputs)


# -- 9. providers --check and base URL settings ---------------------------------------------------


def test_providers_check_says_what_works_and_what_failed(fake_cometapi, fake_useapi, tmp_path):
    home = tmp_path / "home"
    configure(home, "cometapi", f"base_url={fake_cometapi.base_url}")
    configure(home, "useapi", f"base_url={fake_useapi.base_url}", f"email={DEFAULT_ACCOUNT}")
    keys = {COMET_ENV: fake_cometapi.key, USEAPI_ENV: fake_useapi.key}

    ready = kp("providers", "--check", home=home, env=keys)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    checks = [line.strip() for line in ready.stdout.splitlines() if line.strip().startswith("check:")]
    assert f"check: ok, CometAPI at {fake_cometapi.base_url} accepted the key." in checks
    assert f"check: ok, useapi at {fake_useapi.base_url} accepted the token and the account {DEFAULT_ACCOUNT}." in checks
    assert "FAILED" not in ready.stdout
    assert not any(r.billed for r in fake_cometapi.requests + fake_useapi.requests)  # costs nothing

    wrong_key = kp("providers", "--check", home=home, env={**keys, COMET_ENV: "wrong-key-0123456789"})
    assert wrong_key.returncode == 1
    assert "check: FAILED: CometAPI rejected the key: invalid token" in wrong_key.stdout
    assert "wrong-key-0123456789" not in wrong_key.stdout + wrong_key.stderr

    configure(home, "useapi", f"base_url={fake_useapi.base_url}/nowhere")
    wrong_url = kp("providers", "--check", home=home, env=keys)
    assert wrong_url.returncode == 1
    [failed] = [line for line in wrong_url.stdout.splitlines() if "FAILED" in line]
    assert "the base URL looks wrong, check it in settings" in failed and "/nowhere" in failed
    assert "Traceback" not in wrong_url.stderr

    with socket.create_server(("127.0.0.1", 0)) as listener:  # a port that is free once closed
        closed = f"http://127.0.0.1:{listener.getsockname()[1]}"
    configure(home, "useapi", f"base_url={closed}")
    refused = kp("providers", "--check", home=home, env=keys)
    assert refused.returncode == 1
    assert f"check: FAILED: Could not connect to useapi at {closed}: the connection was refused" in refused.stdout

    configure(home, "useapi", f"base_url={fake_useapi.base_url}", "email=stranger@example.com")
    fake_useapi.reference_checked_first = True  # as the real service: the face call alone passes a wrong email
    stranger = kp("providers", "--check", home=home, env=keys)
    assert stranger.returncode == 1
    assert "check: FAILED: useapi does not know the account stranger@example.com" in stranger.stdout

    configure(home, "useapi", f"base_url={fake_useapi.base_url}/v1/kling", f"email={DEFAULT_ACCOUNT}")
    pasted = kp("providers", "--check", home=home, env=keys)
    assert f"remove /v1/kling from it ({fake_useapi.base_url})" in pasted.stdout
    assert pasted.returncode == 1 and "check: FAILED: it cannot run" in pasted.stdout


def test_a_base_url_must_be_https_unless_it_is_this_machine(tmp_path):
    home = tmp_path / "home"
    refused = kp("settings", "set", "cometapi", "base_url=http://example.com", home=home)
    assert refused.returncode == 2
    assert_sentence(refused.stderr, "plain http, which is allowed only for this machine", "use https")
    assert not (home / "settings.json").exists()

    for url in ("https://relay.example.com/cometapi", "http://127.0.0.1:8123", "http://localhost:9"):
        configure(home, "cometapi", f"base_url={url}")
        shown = kp("settings", "show", home=home)
        assert url in shown.stdout
    again = kp("settings", "set", "cometapi", "base_url=http://10.0.0.1", home=home)
    assert again.returncode == 2
    assert "http://localhost:9" in kp("settings", "show", home=home).stdout  # the refused value was not saved


@pytest.mark.parametrize("args", [
    ("settings", "set", "cometapi", "base_url"),
    ("settings", "set", "cometapi", "token=sk-123456"),
    ("scan", str(SAMPLES), "--provider", "cometapi", "--dry-run", "--set", "base_url"),
    ("scan", str(SAMPLES), "--provider", "cometapi", "--dry-run", "--set", "api_key=sk-123456"),
], ids=["settings-no-equals", "settings-key-like", "scan-no-equals", "scan-key-like"])
def test_a_malformed_setting_gets_a_sentence_and_exit_2(args, tmp_path):
    result = kp(*args, home=tmp_path / "home", env={COMET_ENV: "sk-env-123456"})
    assert_sentence(result.stderr)
    assert result.returncode == 2
    assert "sk-123456" not in result.stderr


def test_scan_refuses_a_setting_the_provider_does_not_have(fake_cometapi, tmp_path):
    result = kp("scan", str(SAMPLES), "--provider", "cometapi", "--dry-run", "--set", f"base_ulr={fake_cometapi.base_url}",
                home=tmp_path / "home", env={COMET_ENV: fake_cometapi.key})
    assert result.returncode == 2
    assert_sentence(result.stderr, "cometapi has no setting 'base_ulr'")
