"""Test data: the five test locations, a tiny random BERT and its tokenizer (no weights, no
network), and the real data in ../shared/data (skipped without it, failed in CI)."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from model import Location

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the checkout

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


def make_tiny_tokenizer() -> BertTokenizerFast:
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


def real_tweets(n: int) -> list[bytes]:
    """The first ``n`` raw tweets of the shared us-south stream (skips without the data)."""
    import gzip

    with gzip.open(shared_data("us-south-tweets", "tweets.jsonl.gz"), "rb") as f:
        return [next(f).rstrip(b"\n") for _ in range(n)]
