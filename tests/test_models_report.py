"""The models report's tables (fast, hand-made predictions)."""

from __future__ import annotations

import pandas as pd

from picsearch.reports.models_report import weak_line_table


def test_weak_line_table_splits_the_scores_at_one_third_and_reads_the_experts_scale():
    # experts' means 1, 2, 3 and 4 are true 0, 1/3, 2/3 and 1; a mean of exactly 2 counts as "2 or more"
    frame = pd.DataFrame({"model": [0.1, 0.3, 0.34, 0.9], "true": [0.0, (2 - 1) / 3, 2 / 3, 1.0]})
    rows = weak_line_table(frame, "model").splitlines()[2:]
    assert rows == ["| under 1/3 (weak) | 2 | 0.500 | 1.50 |", "| 1/3 or more | 2 | 1.000 | 3.50 |"]
