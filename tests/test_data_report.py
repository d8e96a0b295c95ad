"""`picsearch report data`: Markdown with PNG plots, on a tiny dataset and on the real one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from picsearch.interfaces.cli import app
from picsearch.reports.data_report import write_data_report
from tiny_dataset import write_tiny_dataset

SECTIONS = ["## Overview", "## Duplicates and missing values", "## Expert scores", "## Expert agreement",
            "## Crowd vs expert", "## Child-content policy"]


def _check_report(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert [s for s in SECTIONS if s not in text] == []
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == ["crowd_vs_expert.png", "expert_agreement.png", "expert_scores.png", "policy_filter.png"]
    for link in links:
        with Image.open(path.parent / link) as image:
            assert image.format == "PNG" and image.width > 600
    assert not list(path.parent.glob(".*.tmp"))  # atomic writes leave no temporaries
    return text


def test_report_on_tiny_dataset(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    text = _check_report(write_data_report(root, tmp_path / "report"))
    assert "Validation: clean." in text
    assert "10 of 16 expert pairs (62.5%) were also rated by the crowd" in text
    assert "| ExpertAnnotations.tsv | 16 | 0 | 0 | none |" in text
    assert re.search(r"Spearman rho = 0\.\d{3}, Kendall tau-b = 0\.\d{3}", text)


def test_report_shows_duplicates_and_empty_values(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    crowd = (root / "CrowdAnnotations.tsv").read_text().splitlines()
    (root / "CrowdAnnotations.tsv").write_text("\n".join([*crowd, crowd[0]]) + "\n")
    text = write_data_report(root, tmp_path / "report").read_text()
    assert "| CrowdAnnotations.tsv | 13 | 1 | 1 | none |" in text
    assert "Validation: **1 problem(s)**" in text


def test_cli_report_data(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    result = CliRunner().invoke(app, ["report", "data", "--data", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    _check_report(tmp_path / "out" / "data_report.md")


def test_cli_report_data_bad_table_is_one_line_error(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "data")
    (root / "ExpertAnnotations.tsv").unlink()
    result = CliRunner().invoke(app, ["report", "data", "--data", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "ExpertAnnotations.tsv: missing file" in result.output


@pytest.mark.data
@pytest.mark.slow
def test_report_on_real_data(real_data: Path, tmp_path: Path) -> None:
    text = _check_report(write_data_report(real_data, tmp_path))
    assert "Validation: clean." in text
    assert "2329 of 5822 expert pairs (40.0%) were also rated by the crowd" in text
