"""The outbox relay: claims committed outbox rows and publishes them exactly once per claim."""
