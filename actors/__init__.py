"""Stateful shards of the online service: card state and terminal state, run as Ray actors.

The layout says which process runs what: `client/` in the ingress and stream replicas,
`actor/` in the shard, desk and layout-keeper actors, `store/` the durable store both
write to; `events` (the typed contract between them), `wire` (the socket that carries it),
`tls` and `errors` are shared. The shard classes are plain Python over `features/` stores
(unit-testable without Ray); `actors.client.directory` turns them into named Ray actors.
"""
