"""The router's configuration: schema and validation, path matching, canary bucketing,
the versioned store with its append-only history, the nginx export and the ``route`` verbs.

Pure Python (no Django), so the ASGI router in ``router/`` can import it.
"""
