"""The events the service publishes, each versioned by ``schema_version``.

- ``GeotaggedPost`` (geotagged topic, keyed by post id): where a post was written, either
  predicted by the model (``source="model"``) or carried by the post itself (``gps``,
  ``place``);
- ``LabeledPost`` (labeled topic, keyed by post id): a post with a trusted city-level
  location, the refit job's training data;
- ``DeadLetter`` (dead-letter topic, keyed by the input's key): an input that is not a post,
  with its original bytes and the reason;
- ``ModelUpdated`` (model-updates topic): a new model version is served.

The JSON Schema of each is generated into ``schemas/json/`` (``python -m schemas.generate``)
and checked for drift by the tests.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from schemas.posts import SCHEMA_VERSION, Post

GEOTAGGED_SCHEMA_VERSION = 2  # GeotaggedPost's own version: 2 added admin and country


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class InputRef(BaseModel):
    """Where an event's input was read: topic, partition, offset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class EventLocation(BaseModel):
    """A named place. ``id`` is the GeoNames id for model predictions, ``twitter:<place id>``
    for a Twitter place, empty for a bare GPS point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    name: str = ""
    admin: str = ""
    country: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ScoredLocation(EventLocation):
    """A candidate of the model's top k: combined score and the two stages' probabilities."""

    score: float = Field(ge=0, le=1, description="exp((1-w) log p_TLC + w log p_TLM)")
    tlc: float = Field(ge=0, le=1, description="p_TLC among the k candidates")
    tlm: float | None = Field(None, ge=0, le=1, description="p_TLM(match); null without rerank")


class AreaProbability(BaseModel):
    """An admin area (``name``: its name, e.g. "Tennessee") or a country (``name``: the
    country as the candidates name it, e.g. "US" or "United States"), and the probability
    that the post is from it: the candidates' combined scores, normalized over the k
    candidates, summed over those inside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    country: str = Field(description="the area's country (the country itself for a country)")
    probability: float = Field(ge=0, le=1)


class GeotaggedPost(_Event):
    """Version 2 added ``admin`` and ``country``; version 1 events (written before) still
    parse, without them."""

    schema_version: Literal[1, 2] = GEOTAGGED_SCHEMA_VERSION
    post_id: str
    source: Literal["model", "gps", "place"]
    location: EventLocation | None = Field(description="null when the model abstained")
    score: float | None = Field(None, description="model score of the location (source=model)")
    abstained: bool = False
    candidates: list[ScoredLocation] = Field(default_factory=list)
    admin: AreaProbability | None = Field(
        None,
        description="the most probable admin area among the candidates (source=model, "
        "abstentions included): the fallback when the city is uncertain",
    )
    country: AreaProbability | None = Field(
        None, description="the most probable country among the candidates (source=model)"
    )
    model_version: str = ""
    posted_at: datetime | None = Field(None, description="the post's own creation time")
    received_at: datetime = Field(description="when the worker read the input")
    geotagged_at: datetime = Field(default_factory=utcnow)
    input: InputRef


class LabeledPost(_Event):
    post: Post
    source: Literal["gps", "place"]
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    place_name: str = Field("", description="the Twitter place's full name, if any")
    received_at: datetime
    input: InputRef


class DeadLetter(_Event):
    """An input the worker cannot use. ``payload`` holds the original bytes (base64 in
    JSON, since they need not be valid UTF-8), cut to the worker's
    ``dead_letter_max_payload_bytes``; ``payload_size`` and ``payload_sha256`` describe the
    whole input, which stays in the input topic at ``input``."""

    input: InputRef
    key: str | None = None
    payload: bytes
    payload_size: int = Field(ge=0)
    payload_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    reason: str = Field(description="short code: not-json, missing-text, too-large ...")
    error_class: str
    detail: str = ""
    failed_at: datetime = Field(default_factory=utcnow)

    @field_serializer("payload")
    def _b64(self, payload: bytes) -> str:
        return base64.b64encode(payload).decode()

    @field_validator("payload", mode="before")
    @classmethod
    def _from_b64(cls, value: object) -> object:
        return base64.b64decode(value) if isinstance(value, str) else value


class ModelUpdated(_Event):
    model_version: str
    collection: str
    alias: str
    previous_version: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


EVENTS: dict[str, type[BaseModel]] = {
    "post": Post,
    "geotagged-post": GeotaggedPost,
    "labeled-post": LabeledPost,
    "dead-letter": DeadLetter,
    "model-updated": ModelUpdated,
}
