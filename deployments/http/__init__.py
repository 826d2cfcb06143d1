"""The HTTP path: the FastAPI ingress, its schemas, errors and ASGI layers, the console's files."""
