"""Helpers the tests import: ``data`` (locations, tiny models, real data) and ``service``
(a worker against the real broker, its outputs and offsets)."""
