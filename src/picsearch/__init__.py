"""picsearch: text-to-image search with a relevance score in [0, 1] trained on human judgements."""

__version__ = "0.1.0"
