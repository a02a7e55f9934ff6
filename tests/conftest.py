"""Shared fixtures: a tiny random ContrastGeo, a served model, the real broker. Helpers that
tests import live in ``tests/support/``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertTokenizerFast

from model import ContrastGeo, ContrastGeoConfig, EncoderConfig, FusionConfig
from tests.support.data import LOCATIONS, make_tiny_tokenizer, tiny_backbone


@pytest.fixture(scope="session")
def tiny_tokenizer() -> BertTokenizerFast:
    return make_tiny_tokenizer()


@pytest.fixture
def make_model(tiny_tokenizer):
    """Factory: a tiny random ContrastGeo with the given fusion strategy and config parts."""

    def make(strategy: str = "vector", seed: int = 0, **config_parts) -> ContrastGeo:
        fusion = config_parts.pop("fusion", FusionConfig(strategy=strategy, heads=2))
        encoder = config_parts.pop("encoder", EncoderConfig(checkpoint="unused"))
        config = ContrastGeoConfig(encoder=encoder, fusion=fusion, **config_parts)
        backbone = tiny_backbone(tiny_tokenizer.vocab_size, seed)
        location_backbone = (
            None if encoder.shared else tiny_backbone(tiny_tokenizer.vocab_size, seed + 1)
        )
        torch.manual_seed(seed)
        return ContrastGeo(config, backbone, tiny_tokenizer, location_backbone)

    return make


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_tokenizer) -> dict[str, Path]:
    """A tiny random vector-fusion model exported to a model store and its LOCATIONS
    indexed in Qdrant's embedded engine, the alias switched: the WorkerSettings fields
    ``model_store`` and ``index_path`` of a served model. Copy it before changing it."""
    from refit.publish import serve
    from stream.settings import WorkerSettings

    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    config = ContrastGeoConfig(
        encoder=EncoderConfig(checkpoint="unused"), fusion=FusionConfig(heads=2)
    )
    model = ContrastGeo(config, tiny_backbone(tiny_tokenizer.vocab_size), tiny_tokenizer).eval()
    fields = {"model_store": root / "models", "index_path": root / "index"}
    settings = WorkerSettings(**fields)
    serve(settings, model, LOCATIONS)
    return fields


def pytest_configure(config):
    """``make test`` runs the suite in one pytest process per core (pytest-xdist); each
    process then gets its share of the cores for PyTorch's threads, so that the processes'
    thread pools do not contend for the same cores. A plain ``pytest`` keeps PyTorch's
    default."""
    import os

    from stream.runtime import cores_given

    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if processes > 1:
        torch.set_num_threads(max(1, cores_given() // processes))


def pytest_collection_modifyitems(items):
    """Every test that runs the real broker is marked ``broker`` (``make test-fast`` leaves
    them out), so that no test can forget its marker."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real Kafka-protocol broker (tansu, in memory) on a free loopback port, one per test
    session; tests keep apart by using their own topics and groups."""
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log") as b:
        yield b


@pytest.fixture
def served(tiny_store, tmp_path) -> dict[str, Path]:
    """A private copy of ``tiny_store`` for a test that changes it (new versions, alias
    switches): the WorkerSettings fields ``model_store`` and ``index_path``."""
    import shutil

    for name, path in tiny_store.items():
        shutil.copytree(path, tmp_path / name)
    return {name: tmp_path / name for name in tiny_store}
