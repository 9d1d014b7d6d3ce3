"""Parity testing: replay a corpus of requests against the monolith and a service, compare
the answers under noise rules (``strangler.compare``) and report a verdict CI can trust.

Modules: ``corpus`` (the JSONL request format), ``generate`` (a corpus from the OpenAPI
schema and seeded data), ``identity`` (test tokens), ``replay`` (the resumable runner),
``records`` (the router's shadow records), ``calibrate`` (baseline noise and proposed
rules), ``report`` (terminal, JSON, JUnit, HTML), ``cli`` (``strangler parity ...``).
"""
