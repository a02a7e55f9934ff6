"""Location encodings remembered by the weights that produced them.

Training and the benchmark encode every candidate location many times, and the same
weights come back: the bank's refresh and the dev evaluation after the same step, WiSE-FT's
α = 0 and the untrained model of step 0, the untrained model of every seed and shot count
(zero-shot's too), the final model's candidates for the rerank selection, the test posts
and ``contrastgeo-prototypes``. At catalogue scale (6,101 US places × 3 prompt templates)
one encoding is about a minute on 2 cores: most of a benchmark run.

The key is a digest of the location encoder's weights (its whole ``state_dict``), its
settings and the exact prompt texts, so a hit returns what encoding again would return, and
any change to the weights (a step, an interpolation) is a miss. Returned tensors are shared:
callers must not modify them in place.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from model.contrastgeo import ContrastGeo
from model.encoders import Encoded
from model.prompts import Location, template_major_prompts


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor in ``module.state_dict()`` (names, shapes, dtypes, bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


class LocationMemo:
    """The last ``size`` location encodings, least recently used dropped first."""

    def __init__(self, size: int = 8):
        if size < 1:
            raise ValueError(f"LocationMemo size must be >= 1, got {size}")
        self.size = size
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple[str, ...], Any] = OrderedDict()

    def embeddings(self, model: ContrastGeo, locations: Sequence[Location]) -> torch.Tensor:
        """``model.embed_locations(locations)``: (N, D) template-averaged embeddings."""
        return self._get("embeddings", model, locations, model.embed_locations)

    def encoded(self, model: ContrastGeo, locations: Sequence[Location]) -> Encoded:
        """``model.encode_locations_batched(locations)``: with the token states that
        ``predict`` needs (pass it as ``encoded_locations``)."""
        return self._get("encoded", model, locations, model.encode_locations_batched)

    def _get(
        self,
        kind: str,
        model: ContrastGeo,
        locations: Sequence[Location],
        encode: Callable[[Sequence[Location]], Any],
    ) -> Any:
        prompts = hashlib.blake2b(
            "\n".join(template_major_prompts(locations, model.config.prompts)).encode(),
            digest_size=16,
        ).hexdigest()
        key = (
            kind,
            weights_digest(model.encoder_for_locations),
            # whether posts share the encoder does not change how locations are encoded
            model.config.encoder.model_dump_json(exclude={"shared"}),
            str(model.device),
            prompts,
        )
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        value = encode(locations)
        self._entries[key] = value
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value
