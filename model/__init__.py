"""The ContrastGeo model: a library used by the trainer and the ONNX exporter.

Start at ``model.contrastgeo.ContrastGeo``; TLC and TLM are in ``model.losses``, hard
negatives in ``model.mining``, the three fusion strategies in ``model.fusion``.
"""

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
