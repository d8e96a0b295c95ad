"""A few generated pictures and a searcher over them that keeps the `Searcher` contract.

Its scores are exact (share of the query's words in a picture's words), so the web tests can
assert rankings, `k` and `min_score` to the digit; tests over a real index sit beside them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from picsearch.data.files import CheckedFile, UncheckedFileError, identify
from picsearch.policy import DISCLAIMER, check
from picsearch.search import Hit, SearchResult

# Each picture's words say what it shows; its colour fills it.
GALLERY = {
    "red-ball.jpg": ("red ball on green grass", (200, 40, 40)),
    "blue-sea.jpg": ("blue sea under a blue sky", (40, 80, 200)),
    "green-field.png": ("green field of grass", (40, 170, 60)),
    "yellow-sun.jpg": ("yellow sun over the sea", (230, 200, 40)),
}


def write_gallery(folder: Path) -> Path:
    """Write the GALLERY pictures (900x600) into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (_, color) in GALLERY.items():
        Image.new("RGB", (900, 600), color).save(folder / name)
    return folder


class WordSearcher:
    """The Searcher contract over GALLERY, with the real child-content policy.

    Score = share of the query's words found in the picture's words, so rankings, `k` and
    `min_score` behave as with the real model; `calls` records what was asked.
    """

    def __init__(self, folder: Path) -> None:
        self.paths = {name: folder / name for name in GALLERY}
        self.calls: list[tuple[str, int, float]] = []
        self.batches: list[list[str]] = []  # the queries of each search_many call

    def __len__(self) -> int:
        return len(self.paths)

    def path_of(self, image_id: str) -> Path:
        if image_id not in self.paths:
            raise KeyError(f"unknown image id {image_id!r}")
        return self.paths[image_id]

    def checked_file(self, image_id: str) -> CheckedFile:
        """The file as it is now (this stand-in checks nothing; the real Searcher's check is tested on an index)."""
        path = self.path_of(image_id)
        try:
            return CheckedFile(path, identify(path))
        except OSError as exc:
            raise UncheckedFileError(f"{path}: cannot be read") from exc

    def search(self, query: str, k: int = 5, min_score: float = 0.0) -> SearchResult:
        self.calls.append((query, k, min_score))
        decision = check(query)
        if decision.blocked:
            return SearchResult(query, True, DISCLAIMER, list(decision.matched))
        words = set(query.lower().split())
        scored = [
            Hit(name, self.paths[name], len(words & set(GALLERY[name][0].split())) / len(words)) for name in GALLERY
        ]
        scored.sort(key=lambda hit: (-hit.score, hit.id))
        return SearchResult(query, False, hits=[hit for hit in scored if hit.score >= min_score][:k])

    def search_many(self, queries: list[str], k: int = 5, min_score: float = 0.0) -> list[SearchResult]:
        self.batches.append(list(queries))
        return [self.search(query, k, min_score) for query in queries]
