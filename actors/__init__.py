"""Stateful shards of the online service: card state and terminal state, run as Ray actors.

The shard classes are plain Python over `features/` stores (unit-testable without Ray);
`actors.ray_shards` turns them into named Ray actors and resolves them by name.
"""
