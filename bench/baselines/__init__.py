"""Baseline servers the benchmarks compare ours against; run them with `python -m`."""
