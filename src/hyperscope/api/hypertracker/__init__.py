"""The HyperTracker API family (/api/external): one routes module per resource family, and `shape.py`, which
turns the service's plain rows into HyperTracker's JSON (camelCase fields, nextCursor, messages naming its routes)."""
