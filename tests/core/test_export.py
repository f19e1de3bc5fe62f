import csv
import io
import json

import pytest

from core.export import CSV_COLUMNS, export_file, write_csv, write_json
from core.models import CheckResult, Face, Outcome, ProbedImage, Problem, Status
from core.store import RowFilter
from tests.core.records import sha

TRICKY_NAMES = [
    "=HYPERLINK(\"x\").jpg",
    "+1.jpg",
    "-2.jpg",
    "@SUM(A1).jpg",
    "\tTabbed.jpg",
    "\rReturn.jpg",
    "comma, and \"quotes\".jpg",
    "two\nlines.jpg",
    "emoji 📸🙂.jpg",
    "Фото 写真 صورة.jpg",
]


@pytest.fixture
def tricky(store):
    """One checked file per tricky name, in a folder whose name is tricky too."""
    folder = "/photos/=folder, \"x\""
    store.save_probes(
        [ProbedImage(f"{folder}/{name}", 1000, 1, sha(n), "JPEG", 800, 600, ()) for n, name in enumerate(TRICKY_NAMES)]
    )
    result = CheckResult(
        head_seg=True,
        face_seg=True,
        cloth_seg=False,
        faces=(Face(10, 20, 30, 40, 0.9), Face(1, 2, 3, 4)),
        result_urls={"head_seg": "https://x/head.png"},
        cost="-0.2",
        request_id="@req",
        raw='{"code": 0, "data": {"task_result": {"images": []}}}',
    )
    store.save_outcomes(
        [
            Outcome(sha(n), "local", f"{folder}/{name}", Status.CHECKED, result=result, attempts=1, duration_ms=5)
            for n, name in enumerate(TRICKY_NAMES)
        ]
    )
    return store


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_neutralises_formulas_and_keeps_every_name(tricky):
    out = io.StringIO(newline="")
    assert write_csv(tricky.query_rows(RowFilter(provider="local")), out) == len(TRICKY_NAMES)
    rows = read_csv(out.getvalue())
    assert list(rows[0]) == list(CSV_COLUMNS)
    files = {row["file"] for row in rows}
    for name in TRICKY_NAMES:
        expected = "'" + name if name[0] in "=+-@\t\r" else name
        assert expected in files
    for row in rows:
        assert row["folder"] == '/photos/=folder, "x"'  # starts with "/": left alone
        assert row["path"] == row["folder"] + "/" + row["file"].removeprefix("'")
        assert (row["cost"], row["request_id"]) == ("'-0.2", "'@req")
        assert (row["width"], row["valid"], row["head_seg"], row["cloth_seg"], row["object_seg"]) == ("800", "yes", "yes", "no", "")
        assert row["faces"] == "10,20,30,40;1,2,3,4"
        assert row["face_count"] == "2"
        assert row["verdict_avatar"] == "yes"


def test_csv_problem_columns_and_empty_cells(store):
    store.save_probes(
        [ProbedImage("/p/small.jpg", 10, 1, sha(1), "PNG", 200, 200, (Problem("extension_mismatch", "A PNG named .jpg.", False),))]
    )
    store.save_outcomes(
        [
            Outcome(
                sha(1),
                "local",
                "/p/small.jpg",
                Status.INVALID,
                problems=(Problem("too_small", "200 × 200 is smaller than 300 px."), Problem("extension_mismatch", "A PNG named .jpg.", False)),
            )
        ]
    )
    out = io.StringIO(newline="")
    write_csv(store.query_rows(RowFilter(provider="local")), out)
    [row] = read_csv(out.getvalue())
    assert row["problem_codes"] == "extension_mismatch;too_small"
    assert row["problems"] == "A PNG named .jpg. | 200 × 200 is smaller than 300 px."
    assert (row["status"], row["valid"], row["verdict_avatar"], row["head_seg"], row["cost"], row["faces"]) == (
        "invalid",
        "no",
        "no",
        "",
        "",
        "",
    )


@pytest.mark.parametrize("bom", [True, False])
def test_csv_byte_order_mark_is_optional(tricky, tmp_path, bom):
    path = tmp_path / "out.csv"
    assert export_file(tricky, path, bom=bom) == len(TRICKY_NAMES)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") is bom
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["file"].removeprefix("'") for row in rows) == sorted(TRICKY_NAMES)
    assert {row["sha256"] for row in rows} == {sha(n) for n in range(len(TRICKY_NAMES))}


def test_json_export_is_nested_and_valid(tricky, tmp_path):
    path = tmp_path / "out.json"
    assert export_file(tricky, path) == len(TRICKY_NAMES)
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
    items = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(item["file"] for item in items) == sorted(TRICKY_NAMES)  # JSON needs no neutralising
    item = items[0]
    assert item["flags"] == {"head_seg": True, "face_seg": True, "cloth_seg": False, "object_seg": None}
    assert item["faces"][0] == {"x": 10, "y": 20, "width": 30, "height": 40, "confidence": 0.9, "crops": []}
    assert item["result_urls"] == {"head_seg": "https://x/head.png"}
    assert item["verdicts"] == {"avatar": "yes", "tryon": "no", "asset": "unknown"}
    assert item["raw"] == {"code": 0, "data": {"task_result": {"images": []}}}
    assert (item["error"], item["cost"], item["valid"], item["status"]) == (None, "-0.2", True, "checked")


def test_json_keeps_raw_text_that_is_not_json_and_reports_errors(store):
    store.save_probes([ProbedImage(f"/p/{n}.jpg", 10, 1, sha(n), "JPEG", 800, 600, ()) for n in range(3)])
    store.save_outcomes(
        [
            Outcome(sha(0), "cometapi", "/p/0.jpg", Status.FAILED, result=CheckResult(raw="<html>502</html>"),
                    error_code="outcome_unknown", error="The server failed."),
            Outcome(sha(1), "cometapi", "/p/1.jpg", Status.CHECKED, result=CheckResult(raw='{"v": NaN}')),
        ]
    )  # fmt: skip
    out = io.StringIO()
    assert write_json(store.query_rows(RowFilter(provider="cometapi")), out) == 3
    items = {item["path"]: item for item in json.loads(out.getvalue(), parse_constant=pytest.fail)}
    assert items["/p/0.jpg"]["raw"] == "<html>502</html>"
    assert items["/p/0.jpg"]["error"] == {"code": "outcome_unknown", "message": "The server failed."}
    assert items["/p/1.jpg"]["raw"] == '{"v": NaN}'
    assert (items["/p/2.jpg"]["status"], items["/p/2.jpg"]["raw"], items["/p/2.jpg"]["faces"]) == ("pending", None, [])


def test_empty_exports_are_valid(store):
    out = io.StringIO()
    assert write_json(iter(()), out) == 0
    assert json.loads(out.getvalue()) == []
    out = io.StringIO(newline="")
    assert write_csv(iter(()), out) == 0
    assert read_csv(out.getvalue()) == []


def template_row(tricky):
    return next(tricky.query_rows(RowFilter(provider="local")))


@pytest.mark.parametrize("writer", [write_csv, write_json])
def test_writers_stream_rows_as_they_come(tricky, writer):
    row = template_row(tricky)
    out = io.StringIO(newline="")
    written = []

    def rows():
        for n in range(10_000):
            # Each row must be out before the next one is asked for.
            assert len(written) == n
            yield {**row, "path": f"/p/{n}.jpg"}

    original_write = out.write

    def write(text):
        if "/p/" in text:
            written.append(text)
        return original_write(text)

    out.write = write
    assert writer(rows(), out) == 10_000
    assert len(written) == 10_000


def test_export_file_writes_every_row_of_a_big_store(store, tmp_path):
    count = 10_000
    store.save_probes([ProbedImage(f"/p/{n:05}.jpg", 10, 1, sha(n), "JPEG", 800, 600, ()) for n in range(count)])
    path = tmp_path / "all.csv"
    assert export_file(store, path, filter=RowFilter(provider="local")) == count
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["path"] for row in rows] == [f"/p/{n:05}.jpg" for n in range(count)]
    assert {row["status"] for row in rows} == {"pending"}


def test_an_interrupted_export_leaves_the_old_file_alone(tricky, tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("previous export\n", encoding="utf-8")
    with pytest.raises(ValueError):
        # The bad status only fails once rows are read, after the header is written.
        export_file(tricky, path, filter=RowFilter(statuses=("nonsense",)))
    assert path.read_text(encoding="utf-8") == "previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name != "results.db" and not p.name.startswith("results.db-")] == [
        "out.csv"
    ]


def test_export_format_comes_from_the_suffix_unless_given(tricky, tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        export_file(tricky, tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()
    assert export_file(tricky, tmp_path / "OUT.JSON") == len(TRICKY_NAMES)
    assert isinstance(json.loads((tmp_path / "OUT.JSON").read_text(encoding="utf-8")), list)
    export_file(tricky, tmp_path / "data.txt", fmt="json")
    assert isinstance(json.loads((tmp_path / "data.txt").read_text(encoding="utf-8")), list)


def test_an_export_gets_ordinary_file_permissions(tmp_path):
    """A temp-file-then-rename export must not leave the file private to its writer."""
    import os

    from core.export import export_rows

    umask = os.umask(0o022)
    try:
        out = tmp_path / "out.csv"
        export_rows(iter([]), out)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind
