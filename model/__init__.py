"""The ContrastGeo model: a library used by the trainer and the ONNX exporter.

Start at ``model.contrastgeo.ContrastGeo``; TLC and TLM are in ``model.losses``, hard
negatives in ``model.mining``, the three fusion strategies in ``model.fusion``.

The names below are imported on first use, so that the torch-free parts (``model.config``,
``model.prompts``, ``model.manifest``) load without PyTorch: the streaming workers use
them and never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ContrastGeoConfig": "model.config",
    "EncoderConfig": "model.config",
    "FusionConfig": "model.config",
    "PromptConfig": "model.config",
    "RerankConfig": "model.config",
    "Location": "model.prompts",
    "PostFields": "model.prompts",
    "ContrastGeo": "model.contrastgeo",
    "Ranking": "model.contrastgeo",
    "Encoded": "model.encoders",
}

__all__ = [
    "ContrastGeo",
    "ContrastGeoConfig",
    "Encoded",
    "EncoderConfig",
    "FusionConfig",
    "Location",
    "PostFields",
    "PromptConfig",
    "Ranking",
    "RerankConfig",
]

if TYPE_CHECKING:
    from model.config import (
        ContrastGeoConfig,
        EncoderConfig,
        FusionConfig,
        PromptConfig,
        RerankConfig,
    )
    from model.contrastgeo import ContrastGeo, Ranking
    from model.encoders import Encoded
    from model.prompts import Location, PostFields


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
