"""Benchmarks: a load generator, baseline servers and the runs that compare them."""
