"""The review verdict from the command line: scan, summary, export filters, CSV and JSON."""

import json

from PIL import Image

from tests.conftest import SAMPLES, read_export_csv
from tests.e2e.test_cli import cli


def test_a_cut_off_face_needs_review_and_the_portrait_stays_yes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    portrait = Image.open(SAMPLES / "mpl_grace_hopper.jpg").convert("RGB")
    portrait.save(photos / "hopper.jpg", quality=95)
    # The left half of the face beyond the left edge (its box is 182,121,171,211).
    portrait.crop((182 + 85, 0, portrait.width, portrait.height)).resize((490, 600)).save(photos / "hopper_cut.jpg", quality=95)
    home = tmp_path / "home"
    scan = cli("scan", str(photos), "--provider", "local", home=home)
    assert scan.returncode == 0, scan.stderr
    assert "review" in scan.stdout and "Face cut off" in scan.stdout

    out = tmp_path / "all.csv"
    assert cli("export", "--out", str(out), home=home).returncode == 0
    rows = {r["file"]: r for r in read_export_csv(out)}
    assert (rows["hopper.jpg"]["verdict_avatar"], rows["hopper.jpg"]["warning_codes"]) == ("yes", "")
    assert rows["hopper_cut.jpg"]["verdict_avatar"] == "review"
    assert "face_cut_off" in rows["hopper_cut.jpg"]["warning_codes"].split(";")
    assert rows["hopper_cut.jpg"]["warnings"]

    review = cli("export", "--verdict", "review", "--format", "json", home=home)
    items = json.loads(review.stdout)
    assert [i["file"] for i in items] == ["hopper_cut.jpg"]
    assert items[0]["verdicts"]["avatar"] == "review"
    assert "face_cut_off" in [w["code"] for w in items[0]["warnings"]]
    ready = cli("export", "--verdict", "avatar", "--format", "json", home=home)
    assert [i["file"] for i in json.loads(ready.stdout)] == ["hopper.jpg"]
    # One provider only: nothing to disagree about.
    assert json.loads(cli("export", "--disagree", "--format", "json", home=home).stdout) == []

    # Stricter thresholds: the stored results are judged again, without the provider.
    stricter = cli("settings", "set", "quality", "face_min_share=0.5", home=home)
    assert stricter.returncode == 0, stricter.stderr
    assert "Judged the stored results again:" in stricter.stdout
    items = json.loads(cli("export", "--verdict", "review", "--format", "json", home=home).stdout)
    assert sorted(i["file"] for i in items) == ["hopper.jpg", "hopper_cut.jpg"]
    assert cli("settings", "set", "quality", "face_min_share=lots", home=home).returncode != 0
