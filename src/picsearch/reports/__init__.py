"""Reports; only the CLI imports them. Every file is written atomically.

- ``data_report.py``: the data report (Markdown + PNG); ``models_report.py``: the models report from a training run.
- ``demo.py``: the demo (train or reuse, index ``test_images/``, search) and ``render.py``: its PNG grid and HTML
  page (``templates/``).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written headless

from matplotlib.figure import Figure  # noqa: E402

from picsearch.storage import write_bytes  # noqa: E402


def save_figure(figure: Figure, path: Path, dpi: int = 110) -> str:
    """Render ``figure`` as PNG at ``path`` (atomically) and return the file name for a Markdown link."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())
    return path.name
