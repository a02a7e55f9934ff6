"""Shared fixtures: a tiny random BERT (no weights, no network) and paths to real data."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from model import ContrastGeo, ContrastGeoConfig, EncoderConfig, FusionConfig, Location

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

LOCATIONS = [
    Location("1", "Memphis", "Tennessee", "US", 35.15, -90.05),
    Location("2", "Nashville", "Tennessee", "US", 36.17, -86.78),
    Location("3", "Ghent", "", "BE", 51.05, 3.72),
    Location("4", "Split", "Split-Dalmatia", "HR", 43.51, 16.44),
    Location("5", "Utrecht", "Utrecht", "NL", 52.09, 5.12),
]


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the test cleanly when the data is absent, except in
    CI (``CI`` set), where the data must be there and its absence fails the test."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"real data not available: {path} (present in CI beside the checkout)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI is set and {message}", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer() -> BertTokenizerFast:
    """A WordPiece tokenizer: whole words for the test vocabulary (location names, prompt
    words), single characters for everything else, so any ASCII text tokenizes."""
    chars = string.ascii_lowercase + string.digits + string.punctuation
    words = {
        w
        for loc in LOCATIONS
        for f in (loc.name, loc.admin, loc.country)
        for w in f.lower().replace("-", " ").split()
    }
    words |= {"a", "post", "from", "hello", "going", "to", "lunch", "in", "rain", "back"}
    vocab = list(
        dict.fromkeys(
            [
                "[PAD]",
                "[UNK]",
                "[CLS]",
                "[SEP]",
                "[MASK]",
                *sorted(words),
                *chars,
                *(f"##{c}" for c in chars),
            ]
        )
    )
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    assert tokenizer.vocab_size == len(vocab)
    return tokenizer


def tiny_backbone(vocab_size: int, seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    return BertModel(config)


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


def real_tweets(n: int) -> list[bytes]:
    """The first ``n`` raw tweets of the shared us-south stream (skips without the data)."""
    import gzip

    with gzip.open(shared_data("us-south-tweets", "tweets.jsonl.gz"), "rb") as f:
        return [next(f).rstrip(b"\n") for _ in range(n)]


def copy_version(settings, old: str, new: str) -> None:
    """Another model version in the store: ``old``'s export under the name ``new``."""
    import shutil

    shutil.copytree(settings.model_folder(old), settings.model_folder(new))
    manifest = settings.model_folder(new) / "manifest.json"
    manifest.write_text(manifest.read_text().replace(old, new))
