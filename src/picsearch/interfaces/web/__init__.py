"""The web interface: a FastAPI app over a `picsearch.search.Searcher`."""

from picsearch.interfaces.web.app import create_app

__all__ = ["create_app"]
