"""The HTTP layer: the legacy contract (byte for byte) and the service's own endpoints."""
