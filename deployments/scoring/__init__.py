"""Plain code every deciding replica runs: the pipeline, the desk service, grouping,
metrics and the report loop (no Serve in it; unit-tested without Ray)."""
