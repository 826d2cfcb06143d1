"""Client side: runs in the ingress and stream replicas: shard clients, the actor
directory, the desk's client and outbox."""
