"""Put a model into service: export it into the model store, index its locations, switch
the alias. Used by ``contrastgeo export``/``index``, the demo, the benchmarks and (later)
the refit job, so that every path publishes a model the same way."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.prompts import Location, load_locations
from stream.prototypes import build_collection
from stream.settings import ServiceSettings

TORCH_DIR = "torch"  # the PyTorch checkpoint inside an exported version


def export_to_store(
    model: Any,
    store: Path,
    locations: Sequence[Location] | None = None,
    quantize: bool = True,
    reduce_range: bool = True,
    vnni_int8: bool = True,
) -> str:
    """Export ``model`` (a ``ContrastGeo``) to ``store/<version>/``; returns the version.
    The PyTorch checkpoint goes along in ``torch/`` (the refit job warm-starts from it; the
    workers never read it). The export is complete before it appears under its version's
    name."""
    from model.conversion.cache import exclusive
    from model.export import export_onnx
    from model.manifest import checked_name, checksums, write_manifest

    store.mkdir(parents=True, exist_ok=True)
    staging = store / ".staging"
    with exclusive(store / ".staging.lock"):  # `export` and a refit share the staging folder
        # what a killed export left behind: the staging folder and the temporary folders
        # export_onnx fills before renaming them to it
        for leftover in [staging, *store.glob(f".{staging.name}.*")]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        manifest = export_onnx(
            model,
            staging,
            quantize=quantize,
            reduce_range=reduce_range,
            vnni_int8=vnni_int8,
            locations=locations,
        )
        model.save(staging / TORCH_DIR)
        # the warm-start checkpoint's checksums, apart from the workers' files (which the
        # workers verify at every load; they never read torch/)
        manifest["torch_files"] = {
            f"{TORCH_DIR}/{name}": digest for name, digest in checksums(staging / TORCH_DIR).items()
        }
        write_manifest(staging, manifest)
        version = checked_name(manifest["model_version"])
        staging.rename(store / version)
    return version


def index_version(
    settings: ServiceSettings,
    index: Any,
    version: str,
    locations: Sequence[Location] | None = None,
    switch: bool = True,
) -> str:
    """Build ``version``'s collection (its own locations unless others are given) and,
    with ``switch``, point the served alias at it; returns the collection name."""
    model = settings.load_model(version)
    if locations is None:
        path = settings.model_folder(version) / "locations.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"no locations: {path} is missing (pass --locations)")
        locations = load_locations(path)
    collection = build_collection(index, model, locations)
    if switch:
        index.set_alias(settings.index_alias, collection)
    return collection


def serve(settings: ServiceSettings, model: Any, locations: Sequence[Location]) -> str:
    """Export ``model`` into the settings' store and serve it over ``locations`` (index,
    alias switch): what the demo, the benchmarks and the tests start from. Returns the
    version."""
    version = export_to_store(model, settings.model_store, locations)
    with settings.open_index() as index:
        index_version(settings, index, version)
    return version


async def announce(
    settings: ServiceSettings, version: str, collection: str, previous: str | None
) -> None:
    """Publish ``ModelUpdated`` so that every running worker reloads now (they also poll
    the alias every ``reload_poll_s``, should this event be missed)."""
    from schemas.events import ModelUpdated
    from stream import kafka

    event = ModelUpdated(
        model_version=version,
        collection=collection,
        alias=settings.index_alias,
        previous_version=previous,
    )
    producer = kafka.producer(settings, acks="all")
    try:
        await producer.start()
        await producer.send_and_wait(
            settings.model_updates_topic, event.to_bytes(), key=version.encode()
        )
    finally:
        await producer.stop()
