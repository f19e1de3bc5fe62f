from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.scan import JUNK_NAMES, OUTPUT_MARKER, is_junk, iter_files

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")


def touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def scan(*roots, **kw) -> tuple[list[str], list[tuple[str, str]]]:
    """Paths found (in order) and (path, reason) pairs skipped."""
    skipped: list[tuple[str, str]] = []
    found = [f.path for f in iter_files(roots, on_skip=lambda p, r: skipped.append((p, r)), **kw)]
    return found, skipped


@pytest.mark.parametrize(
    "name",
    ["Thumbs.db", "THUMBS.DB", "desktop.ini", "Desktop.ini", ".DS_Store", "._IMG_0001.jpg", ".hidden.jpg",
     "__MACOSX"],  # fmt: skip
)
def test_junk_names(name):
    assert is_junk(name)


@pytest.mark.parametrize("name", ["IMG_0001.JPG", "photo.jpg", "thumbs.db.jpg", "notes.txt", "desktop"])
def test_ordinary_names_are_not_junk(name):
    assert not is_junk(name)


def test_junk_names_are_lower_case_so_the_casefolded_lookup_works():
    assert all(name == name.casefold() for name in JUNK_NAMES)


def test_lists_every_non_junk_file_with_its_stat(tmp_path):
    keep = [touch(tmp_path / n, b"abc") for n in ("a.jpg", "b.png", "notes.txt", "video.mp4", "NOEXT")]
    for junk in ("Thumbs.db", "desktop.ini", ".DS_Store", "._a.jpg", ".hidden.png"):
        touch(tmp_path / junk)

    files = list(iter_files([tmp_path]))

    assert sorted(f.path for f in files) == sorted(str(p) for p in keep)
    for f in files:
        st = os.stat(f.path)
        assert os.path.isabs(f.path)
        assert (f.size, f.mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_order_is_by_name_per_folder_with_subfolders_in_place(tmp_path):
    for rel in ("b/z.jpg", "B.jpg", "a.jpg", "c.jpg", "b/a.jpg", "b/sub/x.jpg", "C/y.jpg"):
        touch(tmp_path / rel)

    found, _ = scan(tmp_path)

    rel = [os.path.relpath(p, tmp_path).replace(os.sep, "/") for p in found]
    assert rel == ["a.jpg", "b/a.jpg", "b/sub/x.jpg", "b/z.jpg", "B.jpg", "C/y.jpg", "c.jpg"]
    assert found == scan(tmp_path)[0]


def test_skips_dot_folders_and_junk_folders(tmp_path):
    touch(tmp_path / "keep.jpg")
    touch(tmp_path / ".git" / "objects.jpg")
    touch(tmp_path / ".thumbnails" / "t.jpg")
    touch(tmp_path / "__MACOSX" / "._keep.jpg")

    assert scan(tmp_path)[0] == [str(tmp_path / "keep.jpg")]


def test_non_recursive_lists_only_the_top_folder(tmp_path):
    touch(tmp_path / "top.jpg")
    touch(tmp_path / "sub" / "deep.jpg")

    assert scan(tmp_path, recursive=False)[0] == [str(tmp_path / "top.jpg")]
    assert scan(tmp_path, recursive=True)[0] == [str(tmp_path / "sub" / "deep.jpg"), str(tmp_path / "top.jpg")]


def test_roots_may_be_files_strings_or_paths(tmp_path, monkeypatch):
    one = touch(tmp_path / "one.jpg")
    two = touch(tmp_path / "dir" / "two.jpg")
    monkeypatch.chdir(tmp_path)

    found, skipped = scan("one.jpg", two)

    assert found == [str(one), str(two)]
    assert skipped == []


def test_a_file_reachable_twice_is_listed_once(tmp_path):
    photo = touch(tmp_path / "dir" / "photo.jpg")

    found, _ = scan(photo, tmp_path / "dir", tmp_path, photo)

    assert found == [str(photo)]


def test_a_hard_link_is_the_same_real_file(tmp_path):
    photo = touch(tmp_path / "a.jpg")
    os.link(photo, tmp_path / "b.jpg")

    assert scan(tmp_path)[0] == [str(photo)]


def test_missing_root_is_reported_and_the_rest_still_scanned(tmp_path):
    photo = touch(tmp_path / "a.jpg")
    missing = tmp_path / "gone"

    found, skipped = scan(missing, tmp_path)

    assert found == [str(photo)]
    assert skipped == [(str(missing), "not found")]


@needs_symlinks
def test_follows_a_symlinked_folder(tmp_path):
    outside = touch(tmp_path / "outside" / "x.jpg")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside.parent, target_is_directory=True)

    found, skipped = scan(root)

    assert found == [str(root / "link" / "x.jpg")]
    assert skipped == []


@needs_symlinks
def test_symlink_to_an_ancestor_is_a_loop_reported_once(tmp_path):
    root = tmp_path / "root"
    touch(root / "a.jpg")
    touch(root / "sub" / "b.jpg")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)

    found, skipped = scan(root)

    assert found == [str(root / "a.jpg"), str(root / "sub" / "b.jpg")]
    assert skipped == [(str(root / "sub" / "up"), "symlink loop")]


@needs_symlinks
def test_links_that_point_at_each_other_are_a_loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    photo = touch(tmp_path / "c.jpg")

    found, skipped = scan(tmp_path)

    assert found == [str(photo)]
    assert skipped == [(str(tmp_path / "a"), "symlink loop"), (str(tmp_path / "b"), "symlink loop")]


@needs_symlinks
def test_dangling_symlinks_are_reported_in_folders_and_as_roots(tmp_path):
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    photo = touch(tmp_path / "ok.jpg")

    found, skipped = scan(tmp_path, tmp_path / "broken.jpg")

    assert found == [str(photo)]
    assert skipped == [(str(tmp_path / "broken.jpg"), "dangling symlink")] * 2


@needs_symlinks
def test_a_symlinked_file_and_its_target_count_once(tmp_path):
    photo = touch(tmp_path / "photo.jpg")
    (tmp_path / "alias.jpg").symlink_to(photo)

    assert scan(tmp_path)[0] == [str(tmp_path / "alias.jpg")]


@needs_symlinks
def test_a_folder_reached_through_two_roots_is_walked_once(tmp_path):
    photo = touch(tmp_path / "real" / "x.jpg")
    other = tmp_path / "other"
    other.mkdir()
    (other / "alias").symlink_to(photo.parent, target_is_directory=True)

    found, skipped = scan(photo.parent, other)

    assert found == [str(photo)]
    assert skipped == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root (and Windows) can read any folder")
def test_a_folder_it_may_not_read_is_reported(tmp_path):
    locked = tmp_path / "locked"
    touch(locked / "secret.jpg")
    photo = touch(tmp_path / "ok.jpg")
    locked.chmod(0)
    try:
        found, skipped = scan(tmp_path)
    finally:
        locked.chmod(0o755)

    assert found == [str(photo)]
    assert skipped == [(str(locked), "permission denied")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_not_listed(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    photo = touch(tmp_path / "ok.jpg")

    found, skipped = scan(tmp_path, tmp_path / "pipe.jpg")

    assert found == [str(photo)]
    assert skipped == [(str(tmp_path / "pipe.jpg"), "not a regular file or folder")]


def test_an_output_folder_inside_a_scanned_folder_is_skipped_but_scanned_when_named(tmp_path):
    photo = touch(tmp_path / "a.jpg")
    copy = touch(tmp_path / "ready" / "a.jpg")
    touch(tmp_path / "ready" / OUTPUT_MARKER)

    assert scan(tmp_path) == ([str(photo)], [])
    assert scan(tmp_path / "ready") == ([str(copy)], [])
