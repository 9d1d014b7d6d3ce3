"""strangler: carve services out of a Django monolith one endpoint and one table at a time."""

__version__ = "0.1.0"
