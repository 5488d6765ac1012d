"""Benchmarks of the HTTP path: `python -m bench.http` (see docs/benchmarks.md)."""
