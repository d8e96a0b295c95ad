"""Search: the `Searcher` and its measurement.

- ``searcher.py``: :class:`Searcher` (policy -> retrieve -> rerank -> child filter); ``search`` / ``search_many``
  are the only public ways to rank, and they return visible images only.
- ``evaluate.py``: Recall@K / MRR / median rank on labelled queries (metrics from :mod:`picsearch.metrics`).
"""

from picsearch.search.searcher import CANDIDATES, WEAK_NOTE, Hit, SearchResult, Searcher, check_request

__all__ = ["CANDIDATES", "WEAK_NOTE", "Hit", "SearchResult", "Searcher", "check_request"]
