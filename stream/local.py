"""A throwaway local service for benchmarks: a model exported into a temporary store, its
locations indexed in a temporary embedded index, and the embedded broker with the
service's topics; the settings of a worker for it (fast group joins)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.settings import Settings


@contextmanager
def local_service(model_dir: Path, **overrides: Any) -> Iterator[tuple[Settings, str, Path]]:
    """Yields (settings, served model version, scratch folder); everything is removed after."""
    from model import ContrastGeo
    from model.prompts import load_locations
    from stream.broker import EmbeddedBroker, ensure_topics_sync, free_port
    from stream.publish import export_to_store, index_version

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        tmp = Path(tmp)
        settings = Settings(
            model_store=tmp / "models",
            index_path=tmp / "index",
            data_dir=tmp / "worker",
            broker=broker.url,
            web_port=free_port(),
            session_timeout_s=2.0,
            heartbeat_interval_s=0.3,
            rebalance_timeout_s=2.0,
            take_within_s=0.2,
            **overrides,
        )
        locations = load_locations(model_dir / "locations.jsonl")
        version = export_to_store(ContrastGeo.load(model_dir), settings.model_store, locations)
        index = settings.open_index()
        index_version(settings, index, version)
        index.close()
        ensure_topics_sync(settings)
        yield settings, version, tmp
