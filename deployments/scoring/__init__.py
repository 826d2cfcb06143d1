"""What every deciding replica runs. Plain code, unit-tested without Ray: the pipeline, the
desk service, micro-batching, the thresholds in force and the report loop. `service.py`
wires them to the Ray shard client and the ModelScorer; `metrics.py` exports through
Ray's metrics agent."""
