"""Search: the `Searcher` (policy -> retrieve -> rerank -> child filter), evaluation and the demo."""

from picsearch.search.searcher import CANDIDATES, Hit, SearchResult, Searcher, check_request

__all__ = ["CANDIDATES", "Hit", "SearchResult", "Searcher", "check_request"]
