"""Where each input goes: a pure function of the raw messages, testable without Kafka.

- not a post (not JSON, wrong types, too large ...) -> a ``DeadLetter`` with the reason;
- a stream control notice (``{"delete": ...}``, ``{"limit": ...}``) -> skipped by rule: it
  carries no post, so there is nothing to geotag and nothing to keep;
- a post that carries its own trusted location (a GPS point, or a Twitter place of a
  city-level type) -> a ``LabeledPost`` (training data for the refit job) and a
  ``GeotaggedPost`` with ``source`` ``gps``/``place``;
- every other post -> the predictor.

``route`` is total: whatever goes wrong with one input (a parser bug, a location the event
schema refuses) becomes that input's dead letter, and the other inputs go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from schemas.events import DeadLetter, EventLocation, GeotaggedPost, InputRef, LabeledPost
from schemas.posts import Post
from schemas.twitter import ControlMessage, InvalidPost, parse_post


@dataclass(frozen=True)
class Message:
    """One input record as read from the topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def ref(self) -> InputRef:
        return InputRef(topic=self.topic, partition=self.partition, offset=self.offset)


@dataclass(frozen=True)
class Carried:
    """A post's own trusted location."""

    source: str  # "gps" or "place"
    location: EventLocation
    place_name: str


@dataclass(frozen=True)
class Rules:
    """The input rules, from the worker's settings."""

    max_payload_bytes: int
    max_text_chars: int
    place_types: tuple[str, ...]
    dead_letter_max_payload_bytes: int

    @classmethod
    def of(cls, settings) -> Rules:
        return cls(
            settings.max_payload_bytes,
            settings.max_text_chars,
            settings.trusted_place_types,
            settings.dead_letter_max_payload_bytes,
        )


@dataclass(frozen=True)
class CarriedPost:
    """A post with its own location and its two events, serialized."""

    message: Message
    key: bytes  # the post id: both events' key
    source: str  # "gps" or "place"
    labeled: bytes  # a LabeledPost
    geotagged: bytes  # a GeotaggedPost


@dataclass
class Routed:
    """Each input in exactly one of the four lists."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: list[tuple[Message, str]] = field(default_factory=list)  # (message, notice kind)
    carried: list[CarriedPost] = field(default_factory=list)
    to_predict: list[tuple[Message, Post]] = field(default_factory=list)


def carried_location(post: Post, place_types: tuple[str, ...]) -> Carried | None:
    """The post's GPS point, else its Twitter place when the place is city-level or finer."""
    place = post.place
    place_name = place.full_name or place.name if place else ""
    if post.coordinates is not None:
        location = EventLocation(lat=post.coordinates.lat, lon=post.coordinates.lon)
        if place is not None and place.place_type in place_types:
            location = _place_location(place, post.coordinates.lat, post.coordinates.lon)
        return Carried("gps", location, place_name)
    if place is not None and place.place_type in place_types and place.centroid is not None:
        lat, lon = place.centroid
        return Carried("place", _place_location(place, lat, lon), place_name)
    return None


def _place_location(place, lat: float, lon: float) -> EventLocation:
    # Twitter's full_name is "Memphis, TN" for US cities, "Ghent, Belgium" elsewhere
    _, _, admin = place.full_name.partition(", ")
    return EventLocation(
        id=f"twitter:{place.id}" if place.id else "",
        name=place.name,
        admin=admin,
        country=place.country_code,
        lat=lat,
        lon=lon,
    )


def route(messages: list[Message], rules: Rules, received_at: datetime | None = None) -> Routed:
    """Each message's outcome. Never raises for one message's sake."""
    routed = Routed()
    received_at = received_at or datetime.now(UTC)
    keep = rules.dead_letter_max_payload_bytes
    for message in messages:
        try:
            post = _parse(message, rules.max_payload_bytes, rules.max_text_chars)
        except ControlMessage as notice:
            routed.skipped.append((message, notice.kind))
            continue
        except InvalidPost as exc:
            routed.dead_letters.append(dead_letter(message, exc.reason, exc, exc.detail, keep))
            continue
        except Exception as exc:  # a parser bug must not stop the partition
            routed.dead_letters.append(dead_letter(message, "parser-error", exc, repr(exc), keep))
            continue
        try:
            carried = carried_location(post, rules.place_types)
            if carried is None:
                routed.to_predict.append((message, post))
                continue
            labeled, geotagged = carried_events(message, post, carried, received_at)
            outcome = CarriedPost(
                message, post.id.encode(), carried.source, labeled.to_bytes(), geotagged.to_bytes()
            )
        except Exception as exc:  # an unusable location: this post's outcome, not the batch's
            reason = "invalid-location" if isinstance(exc, ValidationError) else "routing-error"
            routed.dead_letters.append(dead_letter(message, reason, exc, str(exc), keep))
            continue
        routed.carried.append(outcome)
    return routed


def _parse(message: Message, max_payload_bytes: int, max_text_chars: int) -> Post:
    if message.value is None:
        raise InvalidPost("empty", "a null message value (tombstone)")
    if len(message.value) > max_payload_bytes:
        raise InvalidPost("too-large", f"{len(message.value)} bytes > {max_payload_bytes}")
    post = parse_post(message.value)
    if len(post.text) > max_text_chars:
        raise InvalidPost("text-too-long", f"{len(post.text)} characters > {max_text_chars}")
    return post


DEAD_LETTER_KEY_MAX_CHARS = 1024


def dead_letter(
    message: Message, reason: str, error: Exception, detail: str = "", keep: int = 262_144
) -> DeadLetter:
    """The dead letter of an input; its first ``keep`` bytes travel with it (a larger
    payload would not fit in a Kafka message once base64-encoded), the whole of it stays in
    the input topic at ``input`` as long as the topic's retention, and its size and sha256
    identify it. The input's key is cut to ``DEAD_LETTER_KEY_MAX_CHARS`` (it is the dead
    letter's key too): a dead letter is bounded whatever the input."""
    payload = message.value or b""
    detail = detail.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    key = message.key[: 4 * DEAD_LETTER_KEY_MAX_CHARS] if message.key is not None else None
    return DeadLetter(
        input=message.ref,
        key=key.decode("utf-8", "replace")[:DEAD_LETTER_KEY_MAX_CHARS] if key is not None else None,
        payload=payload[:keep],
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        reason=reason,
        error_class=type(error).__name__,
        detail=detail[:500],
    )


def carried_events(
    message: Message, post: Post, carried: Carried, received_at: datetime
) -> tuple[LabeledPost, GeotaggedPost]:
    labeled = LabeledPost(
        post=post,
        source=carried.source,
        lat=carried.location.lat,
        lon=carried.location.lon,
        place_name=carried.place_name,
        received_at=received_at,
        input=message.ref,
    )
    geotagged = GeotaggedPost(
        post_id=post.id,
        source=carried.source,
        location=carried.location,
        posted_at=post.created_at,
        received_at=received_at,
        input=message.ref,
    )
    return labeled, geotagged
