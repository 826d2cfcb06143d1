"""The stream path: the wire format and broker interface, the Redis adapter, the consumer."""
