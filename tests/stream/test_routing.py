"""Routing of raw inputs: real tweets from the shared stream and hand-made bad input."""

from __future__ import annotations

import gzip
import json

import pytest

from schemas.events import DeadLetter
from stream.routing import Message, Rules, carried_location, route
from stream.settings import Settings
from tests.conftest import shared_data

SETTINGS = Settings()


def messages(payloads: list[bytes | None]) -> list[Message]:
    return [Message("posts", 0, i, None, p) for i, p in enumerate(payloads)]


def do_route(payloads, **overrides):
    return route(messages(payloads), Rules.of(SETTINGS.model_copy(update=overrides)))


def test_real_tweets_are_split_by_what_they_carry():
    path = shared_data("us-south-tweets", "tweets.jsonl.gz")
    with gzip.open(path, "rb") as f:
        lines = [next(f).rstrip(b"\n") for _ in range(3000)]
    routed = do_route(lines)
    assert not routed.dead_letters and not routed.skipped
    assert len(routed.carried) + len(routed.to_predict) == len(lines)
    # GPS (coordinates) or a city/poi/neighborhood place -> carried; admin places -> model
    for message, _post, carried in routed.carried:
        tweet = json.loads(message.value)
        if tweet.get("coordinates"):
            assert carried.source == "gps"
            lon, lat = tweet["coordinates"]["coordinates"]
            assert (carried.location.lat, carried.location.lon) == (lat, lon)
        else:
            assert carried.source == "place"
            assert tweet["place"]["place_type"] in ("city", "poi", "neighborhood")
            assert carried.location.name == tweet["place"]["name"]
    for message, _post in routed.to_predict:
        tweet = json.loads(message.value)
        assert not tweet.get("coordinates")
        assert (tweet.get("place") or {}).get("place_type") not in ("city", "poi", "neighborhood")
    assert len(routed.carried) > 100 and len(routed.to_predict) > 1000  # both routes used


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not-json"),
        (b'{"id": "1", "text": "trunc', "not-json"),
        (b"\xff\xfe\x00", "invalid-utf8"),
        (b"[1, 2]", "not-an-object"),
        (b'{"id": "1"}', "unknown-format"),
        (b'{"id": "1", "text": 5}', "invalid-field"),
        (b'{"id": "", "text": "x"}', "missing-id"),
        (b'{"id_str": "1", "user": "not an object", "text": "x"}', "wrong-type"),
        (None, "empty"),
        (b"[" * 100_000 + b"]" * 100_000, "too-large"),
    ],
)
def test_bad_input_is_dead_lettered_with_its_reason(payload, reason):
    routed = do_route([payload], max_payload_bytes=150_000)
    assert [d.reason for d in routed.dead_letters] == [reason]
    letter = routed.dead_letters[0]
    assert letter.payload == (payload or b"")[: SETTINGS.dead_letter_max_payload_bytes]
    assert letter.payload_size == len(payload or b"")
    assert DeadLetter.model_validate_json(letter.to_bytes()) == letter


def test_text_limit_and_control_notices():
    long = json.dumps({"id": "1", "text": "x" * 50}).encode()
    routed = do_route(
        [long, b'{"delete": {"status": {"id": 1}}}', b'{"limit": {"track": 3}}'], max_text_chars=10
    )
    assert [d.reason for d in routed.dead_letters] == ["text-too-long"]
    assert [kind for _, kind in routed.skipped] == ["delete", "limit"]


def test_admin_places_are_not_trusted_and_gps_wins():
    from schemas.posts import Coordinates, Place, Post

    state = Place(name="Tennessee", place_type="admin", bbox=(-90, 35, -81, 36))
    city = Place(
        id="abc",
        name="Memphis",
        full_name="Memphis, TN",
        place_type="city",
        bbox=(-90.3, 35.0, -89.6, 35.3),
    )
    types = SETTINGS.trusted_place_types
    assert carried_location(Post(id="1", text="x", place=state), types) is None
    placed = carried_location(Post(id="1", text="x", place=city), types)
    assert placed.source == "place" and placed.location.admin == "TN"
    assert placed.location.id == "twitter:abc"
    gps = carried_location(
        Post(id="1", text="x", place=city, coordinates=Coordinates(lat=35.1, lon=-90.0)), types
    )
    assert gps.source == "gps" and gps.location.lat == 35.1 and gps.location.name == "Memphis"
