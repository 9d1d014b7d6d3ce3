"""What every deployable exposes besides its API: request ids, JSON logs, health and metrics."""
