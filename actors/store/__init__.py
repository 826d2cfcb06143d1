"""The durable store: its backends and record format, written by the actors and by the
replicas' outboxes."""
