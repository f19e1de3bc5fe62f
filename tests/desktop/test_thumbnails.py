import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import desktop.thumbnails as thumbnails_module  # noqa: E402
from desktop.thumbnails import THUMBNAIL_SIDE, ThumbnailCache, load_thumbnail, render_thumbnail, thumbnail_file  # noqa: E402
from tests.imagefiles import make_corrupt_jpeg, make_jpeg, make_png  # noqa: E402

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def jpeg_with_orientation(path, width, height, orientation):
    image = Image.new("RGB", (width, height), (200, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, "JPEG", exif=exif.tobytes())
    return path


@pytest.fixture
def cache(qapp, tmp_path):
    made = ThumbnailCache(tmp_path / "thumbs")
    yield made
    made.shutdown()


def icon_size(icon):
    sizes = icon.availableSizes()
    assert len(sizes) == 1
    return sizes[0].width(), sizes[0].height()


def fetch(qtbot, cache, sha, path):
    """Ask for a thumbnail, wait for it to be ready, and return what the cache then gives."""
    with qtbot.waitSignal(cache.ready, timeout=10_000, check_params_cb=lambda s: s == sha):
        assert cache.get(sha, str(path)) is None
    return cache.get(sha, str(path))


def test_thumbnail_is_made_off_the_ui_thread_then_served_from_memory(qtbot, cache, tmp_path, monkeypatch):
    photo = make_jpeg(tmp_path / "photo.jpg", 800, 600)
    threads = []
    original = thumbnails_module.render_thumbnail

    def spy(path, side=THUMBNAIL_SIDE):
        threads.append(threading.get_ident())
        return original(path, side)

    monkeypatch.setattr(thumbnails_module, "render_thumbnail", spy)
    icon = fetch(qtbot, cache, SHA_A, photo)
    assert threads and threading.get_ident() not in threads
    assert icon_size(icon) == (THUMBNAIL_SIDE, THUMBNAIL_SIDE * 3 // 4)
    assert cache.get(SHA_A, str(photo)).cacheKey() == icon.cacheKey()  # memory: no new request
    assert cache.pending() == 0 and len(threads) == 1


def test_thumbnail_is_cached_on_disk_and_survives_a_restart(qapp, qtbot, tmp_path):
    photo = make_png(tmp_path / "photo.png", 320, 512)
    first = ThumbnailCache(tmp_path / "thumbs")
    fetch(qtbot, first, SHA_B, photo)
    first.shutdown()
    assert thumbnail_file(tmp_path / "thumbs", SHA_B).is_file()
    photo.unlink()  # only the disk cache can answer now
    second = ThumbnailCache(tmp_path / "thumbs")
    icon = fetch(qtbot, second, SHA_B, photo)
    assert not second.is_broken(SHA_B)
    assert icon_size(icon) == (THUMBNAIL_SIDE * 5 // 8, THUMBNAIL_SIDE)
    second.shutdown()


def test_exif_orientation_is_applied(tmp_path):
    stored_landscape = jpeg_with_orientation(tmp_path / "turned.jpg", 400, 200, 6)
    assert render_thumbnail(stored_landscape).size == (THUMBNAIL_SIDE // 2, THUMBNAIL_SIDE)
    plain = jpeg_with_orientation(tmp_path / "plain.jpg", 400, 200, 1)
    assert render_thumbnail(plain).size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)


def test_broken_file_gets_the_broken_placeholder_and_no_disk_file(qtbot, cache, tmp_path):
    broken = make_corrupt_jpeg(tmp_path / "broken.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for sha, path in ((SHA_A, broken), (SHA_B, text), (SHA_C, tmp_path / "missing.jpg")):
        icon = fetch(qtbot, cache, sha, path)
        assert icon.cacheKey() == cache.broken().cacheKey()
        assert cache.is_broken(sha)
        assert not thumbnail_file(cache.folder, sha).exists()
    assert cache.get(None, str(text)).cacheKey() == cache.broken().cacheKey()  # unreadable: no hash


def test_placeholders_differ_and_are_drawn(cache):
    placeholder, broken = cache.placeholder(), cache.broken()
    assert placeholder.cacheKey() != broken.cacheKey()
    assert not placeholder.isNull() and not broken.isNull()


def test_memory_holds_a_bounded_number_and_reloads_from_disk(qapp, qtbot, tmp_path):
    small = ThumbnailCache(tmp_path / "thumbs", memory_items=2)
    photos = [make_jpeg(tmp_path / f"p{n}.jpg", 200, 200) for n in range(3)]
    for sha, photo in zip((SHA_A, SHA_B, SHA_C), photos):
        fetch(qtbot, small, sha, photo)
    assert small.get(SHA_B, str(photos[1])) is not None
    assert small.get(SHA_A, str(photos[0])) is None  # evicted, asked for again
    with qtbot.waitSignal(small.ready, timeout=10_000):
        pass
    assert small.get(SHA_A, str(photos[0])) is not None
    small.shutdown()


def test_an_unwritable_cache_folder_still_gives_thumbnails(tmp_path):
    blocker = tmp_path / "thumbs"
    blocker.write_text("a file where the folder should be")
    photo = make_jpeg(tmp_path / "photo.jpg", 300, 300)
    image = load_thumbnail(blocker, SHA_A, str(photo))
    assert image is not None and image.width() == THUMBNAIL_SIDE


def test_shutdown_leaves_no_thread_running(qapp, tmp_path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    for n in range(20):
        cache.get(f"{n:064x}", str(make_jpeg(tmp_path / f"{n}.jpg", 640, 480)))
    cache.shutdown()
    assert cache.wait(0)  # waitForDone(0): True only when no job is running or queued
