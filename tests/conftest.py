"""Shared fixtures and tiers. Tests marked `data` read the real dataset from $PICSEARCH_DATA; tests marked
`browser` drive /usr/bin/chromium. Without either, those tests are left out with one note, except under CI
(``$CI`` set), where a missing dataset or Chromium is an error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The tests are many small fits; on a busy 2-core machine two spinning threads make them 2-4x slower than one
# (two_tower tests: 18 s -> 4.6 s). Set before numpy, torch and OpenMP load; override from the environment.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")
THREADS = int(os.environ["OMP_NUM_THREADS"])

_DATA = os.environ.get("PICSEARCH_DATA")
_HAVE_DATA = bool(_DATA) and Path(_DATA).is_dir()
CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = f"{CHROMIUM} is missing (get it with `apt-get install chromium`)"
_notes: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _notes.clear()
    if not _HAVE_DATA:
        if os.environ.get("CI"):
            raise pytest.UsageError(f"CI must run the data tests, but $PICSEARCH_DATA={_DATA!r} is not a folder")
        skip = pytest.mark.skip(reason="needs the real dataset: set $PICSEARCH_DATA to the image_search folder")
        for item in items:
            if "data" in item.keywords:
                item.add_marker(skip)
        _notes.append("NOTE: tests marked `data` were skipped: $PICSEARCH_DATA is not set to the dataset folder.")
    browser = [item for item in items if "browser" in item.keywords]
    if browser and not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise pytest.UsageError(f"CI must run the browser tests, but {NO_CHROMIUM}")
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if "browser" not in item.keywords]
        _notes.append(f"NOTE: {len(browser)} browser tests were left out: {NO_CHROMIUM}.")


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    """Back to :data:`THREADS` torch threads before each test (embedding raises them to the CPU count)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != THREADS:
        torch.set_num_threads(THREADS)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for note in _notes:
        terminalreporter.write_line(note, yellow=True)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, which the browser tests drive (never `playwright install`)."""
    assert CHROMIUM.exists(), NO_CHROMIUM
    return CHROMIUM


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real dataset folder (only for tests marked `data`)."""
    assert _HAVE_DATA, "tests using real_data must be marked @pytest.mark.data"
    return Path(_DATA)


@pytest.fixture(scope="session")
def real_artifacts(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models trained once per session on the real data by `picsearch train`; data tests share them.

    ``$PICSEARCH_TEST_ARTIFACTS`` names a folder to train into or, when it already holds models
    trained on this data, to reuse (saves the training time on repeated local runs).
    """
    from typer.testing import CliRunner

    from picsearch.data import load_dataset
    from picsearch.interfaces.cli import app
    from picsearch.reports.demo import trained_on

    reuse = os.environ.get("PICSEARCH_TEST_ARTIFACTS")
    artifacts = Path(reuse) if reuse else tmp_path_factory.mktemp("artifacts")
    if not trained_on(load_dataset(real_data), artifacts):
        result = CliRunner().invoke(app, ["train", "--data", str(real_data), "--out", str(artifacts)])
        assert result.exit_code == 0, result.output
    return artifacts


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models trained by `picsearch train` on drawn shapes with stub encoders (tests/synthetic_bundle.py)."""
    from synthetic_bundle import train_synthetic_bundle

    return train_synthetic_bundle(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def synthetic_index(synthetic_bundle: Path) -> Path:
    """An index of the drawn gallery (``synthetic_index.parent / "gallery"``) built by `build_index` with
    :func:`synthetic_bundle`; its pink pictures are child-flagged. Read-only: copy it to change it."""
    from synthetic_bundle import build_synthetic_index

    return build_synthetic_index(synthetic_bundle, synthetic_bundle.parent)


@pytest.fixture(scope="session")
def synthetic_searcher(synthetic_index: Path):
    """``Searcher.open(synthetic_index)``, shared by the session: do not change its index."""
    from picsearch.search import Searcher

    return Searcher.open(synthetic_index)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random two-tower CLIP folder (tests/hub_models.py)."""
    from hub_models import build_clip

    return build_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ResNet classification checkpoint folder (tests/hub_models.py)."""
    from hub_models import build_resnet

    return build_resnet(tmp_path_factory.mktemp("tiny-resnet"))


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT folder with its tokenizer (tests/hub_models.py)."""
    from hub_models import build_bert

    return build_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def stub_uvicorn(monkeypatch: pytest.MonkeyPatch) -> dict:
    """uvicorn's Server replaced by a recorder: what `serve` would have served lands in the returned dict
    (``app``, ``host``, ``port``, ``keep_alive``, and ``ran`` once run), and no socket is opened."""
    import uvicorn

    served: dict = {}

    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            served.update(app=config.app, host=config.host, port=config.port, keep_alive=config.timeout_keep_alive)

        def run(self) -> None:
            served.update(ran=True)

    monkeypatch.setattr(uvicorn, "Server", Server)
    return served
