"""Index integrity against a hostile or careless gallery: only checked bytes are served, one writer per
index, and every file that cannot be indexed is named. Hostile cases are tables: add a row to extend one.

Runs on the synthetic bundle (stub encoders, a real trained RelevanceBundle): no real data, no weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from picsearch.data import files, images as images_module
from picsearch.data.files import UncheckedFileError, scan_images
from picsearch.data.images import ImageReadError, read_image
from picsearch.index import GalleryIndex, IndexFormatError, build_index, image_id, index_lock, read_manifest
from picsearch.index import ingest
from picsearch.interfaces.cli import app
from picsearch.interfaces.web import create_app
from picsearch.search import Searcher
from synthetic_bundle import draw, register_stub_encoders, write_gallery

HARMLESS, CHILD = "red-circle.png", "pink-circle.png"
TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


@pytest.fixture()
def model(synthetic_bundle: Path) -> Path:
    return synthetic_bundle


@pytest.fixture()
def indexed(model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh gallery and its index: (gallery, index folder)."""
    register_stub_encoders()
    write_gallery(tmp_path / "gallery")
    build_index(tmp_path / "gallery", model, tmp_path / "index", tmp_path / "cache", progress=False)
    return tmp_path / "gallery", tmp_path / "index"


# --- Serve only what was checked -------------------------------------------------------------------------


def _overwrite_with_child(gallery: Path, outside: Path) -> None:
    (gallery / HARMLESS).write_bytes((gallery / CHILD).read_bytes())


def _same_size_forged_mtime(gallery: Path, outside: Path) -> None:
    path = gallery / HARMLESS
    before, data = path.stat(), bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as indexed; ctime moved


def _symlink_out(gallery: Path, outside: Path) -> None:
    target = outside / "secret.txt"
    target.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (gallery / HARMLESS).unlink()
    (gallery / HARMLESS).symlink_to(target)


def _symlink_to_child(gallery: Path, outside: Path) -> None:
    (gallery / HARMLESS).unlink()
    (gallery / HARMLESS).symlink_to(gallery / CHILD)


def _folder_swapped_for_link_out(gallery: Path, outside: Path) -> None:
    shutil.copytree(gallery / "sub", outside / "sub")
    shutil.rmtree(gallery / "sub")
    (gallery / "sub").symlink_to(outside / "sub", target_is_directory=True)


def _removed(gallery: Path, outside: Path) -> None:
    (gallery / HARMLESS).unlink()


def _touched(gallery: Path, outside: Path) -> None:
    os.utime(gallery / HARMLESS, ns=(1, 1_000_000_000))


def _copied_back(gallery: Path, outside: Path) -> None:
    data = (gallery / HARMLESS).read_bytes()
    (gallery / HARMLESS).unlink()
    (gallery / HARMLESS).write_bytes(data)  # new inode and times, same bytes


TAMPERING: list[tuple[str, str, Callable[[Path, Path], None], bool]] = [
    # (case, photo it touches, how, still served)
    ("overwritten with a child photo", HARMLESS, _overwrite_with_child, False),
    ("same size, mtime set back", HARMLESS, _same_size_forged_mtime, False),
    ("replaced by a symlink out of the gallery", HARMLESS, _symlink_out, False),
    ("replaced by a symlink to a flagged photo", HARMLESS, _symlink_to_child, False),
    ("its folder replaced by a symlink out", "sub/blue-square.png", _folder_swapped_for_link_out, False),
    ("removed", HARMLESS, _removed, False),
    ("touched, same bytes", HARMLESS, _touched, True),
    ("deleted and written back, same bytes", HARMLESS, _copied_back, True),
]


@pytest.mark.parametrize(("case", "photo", "tamper", "served"), TAMPERING, ids=[row[0] for row in TAMPERING])
def test_only_checked_files_are_served_or_returned(indexed, tmp_path, case, photo, tamper, served):
    gallery, index_dir = indexed
    searcher = Searcher.open(index_dir)
    client = TestClient(create_app(searcher, tmp_path / "thumbs"))
    target = image_id(photo)
    assert client.get(f"/thumbs/{target}").status_code == 200  # a thumbnail is cached before the swap
    (tmp_path / "outside").mkdir()
    tamper(gallery, tmp_path / "outside")

    everything = searcher.search("a shape on grey", k=len(searcher))
    assert (target in {hit.id for hit in everything.hits}) == served
    assert all(hit.path.is_relative_to(gallery.resolve()) for hit in everything.hits)
    for route in ("images", "thumbs"):
        assert client.get(f"/{route}/{target}").status_code == (200 if served else 404), route
    if served:
        assert searcher.path_of(target) == (gallery / photo).resolve()
        assert client.get(f"/images/{target}").content == (gallery / photo).read_bytes()
    else:
        with pytest.raises(UncheckedFileError, match=Path(photo).name):
            searcher.path_of(target)
        assert b"root:x" not in client.get(f"/images/{target}").content


def test_a_touched_file_is_hashed_once_then_accepted_by_its_stat(indexed, monkeypatch):
    gallery, index_dir = indexed
    index = GalleryIndex.load(index_dir)
    _touched(gallery, gallery)
    calls, original = [], files.identify
    monkeypatch.setattr(files, "identify", lambda path: calls.append(path) or original(path))
    row = index.paths.index(HARMLESS)
    for _ in range(3):
        assert index.checked_file(row).path == (gallery / HARMLESS).resolve()
    assert len(calls) == 1


def test_thumbnails_are_keyed_by_content_not_mtime(indexed, tmp_path):
    gallery, index_dir = indexed
    app_ = create_app(Searcher.open(index_dir), tmp_path / "thumbs")
    client, target = TestClient(app_), image_id(HARMLESS)
    first = client.get(f"/thumbs/{target}")
    _touched(gallery, gallery)
    again = client.get(f"/thumbs/{target}")
    assert again.status_code == 200 and again.headers["etag"] == first.headers["etag"]
    assert app_.state.web.thumbs.generated == 1


# --- Files that cannot be indexed are skipped and named; the run goes on -----------------------------------


def _non_utf8_name(gallery: Path, outside: Path) -> None:
    draw("green", "circle").save(os.path.join(os.fsencode(gallery), b"caf\xe9.png"), "PNG")


def _self_loop(gallery: Path, outside: Path) -> None:
    (gallery / "loop.jpg").symlink_to(gallery / "loop.jpg")


def _folder_loop(gallery: Path, outside: Path) -> None:
    (gallery / "sub" / "again").symlink_to(gallery, target_is_directory=True)


def _file_link_out(gallery: Path, outside: Path) -> None:
    draw("green", "square").save(outside / "elsewhere.png")
    (gallery / "elsewhere.png").symlink_to(outside / "elsewhere.png")


def _folder_link_out(gallery: Path, outside: Path) -> None:
    (outside / "more").mkdir()
    draw("green", "square").save(outside / "more" / "x.png")
    (gallery / "more").symlink_to(outside / "more", target_is_directory=True)


def _thin(width: int, height: int) -> Callable[[Path, Path], None]:
    def make(gallery: Path, outside: Path) -> None:
        Image.new("L", (width, height), 128).save(gallery / f"thin-{width}x{height}.png")

    return make


UNINDEXABLE: list[tuple[str, Callable[[Path, Path], None], str, str]] = [
    # (case, how, name in the report, reason in the report)
    ("non-UTF-8 file name", _non_utf8_name, "caf\\xe9.png", "not valid UTF-8"),
    ("symlink to itself", _self_loop, "loop.jpg", "symlink loop"),
    ("folder symlink to an ancestor", _folder_loop, "sub/again", "symlink loop"),
    ("file symlink out of the gallery", _file_link_out, "elsewhere.png", "leads out of the folder"),
    ("folder symlink out of the gallery", _folder_link_out, "more", "leads out of the folder"),
    ("1 x 60000 pixels", _thin(1, 60_000), "thin-1x60000.png", "aspect ratio"),
    ("60000 x 1 pixels", _thin(60_000, 1), "thin-60000x1.png", "aspect ratio"),
    ("21:1", _thin(2100, 100), "thin-2100x100.png", "aspect ratio"),
]


@pytest.mark.parametrize(("case", "make", "name", "reason"), UNINDEXABLE, ids=[row[0] for row in UNINDEXABLE])
def test_unindexable_files_are_skipped_and_named(model, tmp_path, case, make, name, reason):
    register_stub_encoders()
    gallery = tmp_path / "gallery"
    write_gallery(gallery)
    (tmp_path / "outside").mkdir()
    make(gallery, tmp_path / "outside")
    args = ["index", str(gallery), "--model", str(model), "--out", str(tmp_path / "index"), "--cache", str(tmp_path / "c")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and f"{name}: " in skipped[0] and reason in skipped[0], result.output
    index = GalleryIndex.load(tmp_path / "index")
    assert len(index) == len(write_gallery(tmp_path / "again"))  # every ordinary photo is indexed


def test_train_images_listing_names_loops_and_bad_names(tmp_path):
    folder = tmp_path / "train_images"
    folder.mkdir()
    draw("red", "circle").save(folder / "ok.png")
    _non_utf8_name(folder, tmp_path)
    _self_loop(folder, tmp_path)
    listing = scan_images(folder)
    assert [path.name for path in listing.files] == ["ok.png"]
    assert dict(listing.skipped) == {"caf\\xe9.png": "file name is not valid UTF-8; rename it", "loop.jpg": "symlink loop"}


# --- Extreme shapes and memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "refused"),
    [((1, 40_000), True), ((40_000, 1), True), ((2001, 100), True), ((2000, 100), False), ((100, 2000), False)],
)
def test_aspect_ratio_beyond_any_photo_is_refused(tmp_path, size, refused):
    path = tmp_path / "shape.png"
    Image.new("L", size).save(path)
    if refused:
        with pytest.raises(ImageReadError, match=r"shape\.png: .*aspect ratio beyond 20:1"):
            read_image(path)
    else:
        assert read_image(path).size == size


def test_decoding_memory_is_bounded(tmp_path, monkeypatch):
    png, jpeg = tmp_path / "big.png", tmp_path / "big.jpg"
    Image.new("RGB", (4096, 3072), (10, 200, 30)).save(png)
    Image.new("RGB", (4096, 3072), (10, 200, 30)).save(jpeg, quality=90)
    monkeypatch.setattr(images_module, "MAX_DECODED_BYTES", 4096 * 3072 * 8 - 1)  # one full-size decode too many
    with pytest.raises(ImageReadError, match=r"big\.png: 4096x3072 RGB needs 96 MiB to decode, over the"):
        read_image(png)
    assert read_image(jpeg).size == (2048, 1536)  # JPEG decoded at half scale: both sides stay >= 1024


# --- One writer per index; a broken index is rebuilt ------------------------------------------------------

RUN_CLI = (
    "import sys; sys.path.insert(0, {tests!r}); from synthetic_bundle import register_stub_encoders; "
    "register_stub_encoders(); from picsearch.interfaces.cli import main; main()"
)


def _start_index(tmp_path: Path, model: Path, name: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    """`picsearch index` in a real process of its own; returns it and the file its stderr goes to."""
    err = tmp_path / f"{name}.err"
    args = ["index", str(tmp_path / "gallery"), "--model", str(model), "--out", str(tmp_path / "index"),
            "--cache", str(tmp_path / "cache"), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    script = RUN_CLI.format(tests=str(TESTS))
    with open(tmp_path / f"{name}.out", "wb") as out, open(err, "wb") as errors:
        process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=out, stderr=errors, env=env)
    return process, err


def _wait_until(condition: Callable[[], bool], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_concurrent_index_runs_take_turns(model, tmp_path):
    """Three real processes on one --out while this test process holds its lock: two wait, --no-wait fails."""
    write_gallery(tmp_path / "gallery")
    holder = f"process {os.getpid()} is updating this index"
    with index_lock(tmp_path / "index"):
        runs = [_start_index(tmp_path, model, f"run{i}") for i in range(2)]
        impatient, impatient_err = _start_index(tmp_path, model, "impatient", "--no-wait")
        assert impatient.wait(timeout=300) == 2
        _wait_until(lambda: all(f"{holder}; waiting for it to finish" in err.read_text() for _, err in runs))
    message = impatient_err.read_text()
    assert f"{holder}; try again when it has finished" in message and "Traceback" not in message
    codes = [process.wait(timeout=300) for process, _ in runs]
    outputs = [(tmp_path / f"run{i}.out").read_text() for i in range(2)]
    assert codes == [0, 0], [err.read_text() for _, err in runs]
    assert sorted("added 14," in out for out in outputs) == [False, True]  # the second found the first's index
    assert any("unchanged 14," in out for out in outputs)
    index = GalleryIndex.load(tmp_path / "index")
    assert len(index) == 14
    assert [p.name for p in (tmp_path / "index").glob("data-*")] == [read_manifest(tmp_path / "index")["data"]]


def test_a_manifest_without_its_data_is_rebuilt(indexed, model, tmp_path):
    gallery, index_dir = indexed
    shutil.rmtree(index_dir / read_manifest(index_dir)["data"])
    with pytest.raises(IndexFormatError, match="data folder named by manifest.json is missing"):
        Searcher.open(index_dir)
    args = ["index", str(gallery), "--model", str(model), "--out", str(index_dir), "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "the previous index cannot be read" in result.output and "rebuilding it" in result.output
    assert len(Searcher.open(index_dir).index) == 14


def test_a_save_removes_only_the_data_it_made_stale(indexed):
    _, index_dir = indexed
    replaced = read_manifest(index_dir)["data"]
    in_progress = index_dir / "data-1-999999"  # another writer's folder, not yet named by the manifest
    in_progress.mkdir()
    GalleryIndex.load(index_dir, mmap=False).save(index_dir)
    assert in_progress.is_dir() and not (index_dir / replaced).exists()


def test_an_index_run_removes_leftovers_of_killed_runs(indexed, model, tmp_path):
    gallery, index_dir = indexed
    (index_dir / "data-1-999999").mkdir()
    report = build_index(gallery, model, index_dir, tmp_path / "cache", progress=False)
    assert not (index_dir / "data-1-999999").exists() and "left by an interrupted run" in report.notes[0]


def test_each_file_is_hashed_once_and_unchanged_files_not_at_all(model, tmp_path, monkeypatch):
    register_stub_encoders()
    paths = write_gallery(tmp_path / "gallery")
    calls, original = [], ingest.identify
    monkeypatch.setattr(ingest, "identify", lambda path: calls.append(Path(path)) or original(path))
    monkeypatch.setattr("picsearch.features.embed._digest_or_reason", lambda path: pytest.fail("hashed twice"))
    build_index(tmp_path / "gallery", model, tmp_path / "index", tmp_path / "cache", progress=False)
    assert sorted(calls) == sorted(paths)
    calls.clear()
    _touched(tmp_path / "gallery", tmp_path)
    report = build_index(tmp_path / "gallery", model, tmp_path / "index", tmp_path / "cache", progress=False)
    assert calls == [tmp_path / "gallery" / HARMLESS] and report.unchanged == 14 and not report.wrote
    index = GalleryIndex.load(tmp_path / "index")
    assert index.identity(index.paths.index(HARMLESS)).mtime_ns == 1_000_000_000  # the new stat is recorded
