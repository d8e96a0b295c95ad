"""The Searcher's surface: ranking is reachable only through the policy-checked, child-filtered entry points."""

from picsearch.search import Searcher


def test_the_only_public_ways_to_rank_are_search_and_search_many() -> None:
    """Ranking helpers are private: a new public method that ranks must be a deliberate change of this set."""
    assert {name for name in dir(Searcher) if not name.startswith("_")} == {"open", "search", "search_many", "path_of"}
