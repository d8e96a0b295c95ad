"""Benchmarks that print tables: `python -m picsearch.bench.embed`, `python -m picsearch.bench.search`."""
