"""Encodings remembered by the weights that produced them.

Training and the benchmark encode the same texts at the same weights again and again:
the candidate locations at the bank's refresh and the dev evaluation after the same step,
at WiSE-FT's α = 0 and the untrained model of step 0, at the untrained model of every seed
and shot count (zero-shot's too), for the rerank selection, the test posts and
``contrastgeo-prototypes``; and the dev posts at step 0, which is the same untrained model
for every shot count of a seed. At catalogue scale (6,101 US places × 3 prompt templates)
one encoding of the candidates is about a minute on 2 cores, and 500 dev posts about 20 s.

The key is a digest of the encoder's weights (its whole ``state_dict``), its settings and
the exact texts, so a hit returns what encoding again would return, and any change to the
weights (a step, an interpolation) is a miss. Returned tensors are shared: callers must not
modify them in place.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model.contrastgeo import ContrastGeo
from model.encoders import Encoded
from model.prompts import Location, location_inputs


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor in ``module.state_dict()`` (names, shapes, dtypes, bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


def _texts_digest(texts: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(texts).encode(), digest_size=16).hexdigest()


class EncodingMemo:
    """The last ``size`` location encodings and the last ``post_size`` post embeddings,
    least recently used dropped first (posts are small: 500 dev posts are 0.8 MB; a
    catalogue's full encodings, with token states, hundreds of MB)."""

    def __init__(self, size: int = 8, post_size: int = 32):
        if size < 1 or post_size < 1:
            raise ValueError(f"EncodingMemo sizes must be >= 1, got {size} and {post_size}")
        self.hits = self.misses = 0
        self._locations = _Lru(size)
        self._posts = _Lru(post_size)

    def embeddings(self, model: ContrastGeo, locations: Sequence[Location]) -> torch.Tensor:
        """``model.embed_locations(locations)``: (N, D) template-averaged embeddings; the
        embeddings of a full encoding at the same weights when there is one."""
        key = self._location_key(model, locations)
        full = self._locations.get(("encoded", *key))
        if full is not None:
            self.hits += 1
            return full.embeddings
        return self._get(self._locations, ("embeddings", *key), model.embed_locations, locations)

    def encoded(self, model: ContrastGeo, locations: Sequence[Location]) -> Encoded:
        """``model.encode_locations_batched(locations)``: with the token states that
        ``predict`` needs (pass it as ``encoded_locations``)."""
        key = ("encoded", *self._location_key(model, locations))
        return self._get(self._locations, key, model.encode_locations_batched, locations)

    def posts(self, model: ContrastGeo, posts: Sequence[Any]) -> torch.Tensor:
        """``model.embed_posts(posts)``: (B, D) post embeddings."""
        key = (
            weights_digest(model.post_encoder),
            model.config.encoder.model_dump_json(exclude={"shared", "location_max_length"}),
            str(model.device),
            _texts_digest(model.post_texts(posts)),
        )
        return self._get(self._posts, key, model.embed_posts, posts)

    @staticmethod
    def _location_key(model: ContrastGeo, locations: Sequence[Location]) -> tuple[str, ...]:
        return (
            weights_digest(model.encoder_for_locations),
            # whether posts share the encoder does not change how locations are encoded
            model.config.encoder.model_dump_json(exclude={"shared"}),
            str(model.device),
            _texts_digest(location_inputs(locations, model.config)),
        )

    def _get(self, lru: _Lru, key: tuple[str, ...], encode: Callable[[Any], Any], items) -> Any:
        value = lru.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        value = encode(items)
        lru.put(key, value)
        return value


class _Lru:
    def __init__(self, size: int):
        self.size, self.entries = size, OrderedDict()

    def get(self, key: tuple[str, ...]) -> Any:
        if key not in self.entries:
            return None
        self.entries.move_to_end(key)
        return self.entries[key]

    def put(self, key: tuple[str, ...], value: Any) -> None:
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
