"""picsearch: text-to-image search with a relevance score in [0, 1] trained on human judgements."""

import os

# OpenBLAS (numpy's BLAS) keeps its worker threads spinning for about 2^28 cycles after each multi-threaded
# product; a thread pool that runs next on the same CPUs (the e5 engine's OpenMP) then crawls: a Russian query took
# 87-108 ms to encode right after a text map or a gallery scan, 8.7 ms alone. 2^4 cycles makes them sleep at once
# (9.0 ms after either). OpenBLAS reads it when it loads, so it is set here, before any picsearch module imports
# numpy; a value already in the environment is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
