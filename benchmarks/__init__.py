"""Benchmark suite: scripts that print and save JSON results (never timed test assertions)."""
