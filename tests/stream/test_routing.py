"""Routing of raw inputs: real tweets from the shared stream and hand-made bad input."""

from __future__ import annotations

import gzip
import json

import pytest

from schemas.events import DeadLetter, GeotaggedPost, LabeledPost
from stream.routing import Message, Rules, carried_location, route
from stream.settings import WorkerSettings
from tests.reliability.nasty import POISONED_PLACE
from tests.support.data import shared_data

SETTINGS = WorkerSettings()


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
    for carried in routed.carried:
        tweet = json.loads(carried.message.value)
        labeled = LabeledPost.model_validate_json(carried.labeled)
        geotagged = GeotaggedPost.model_validate_json(carried.geotagged)
        assert carried.key == tweet["id_str"].encode() == geotagged.post_id.encode()
        assert labeled.post.id == tweet["id_str"] and labeled.source == carried.source
        if tweet.get("coordinates"):
            assert carried.source == "gps" == geotagged.source
            lon, lat = tweet["coordinates"]["coordinates"]
            assert (geotagged.location.lat, geotagged.location.lon) == (lat, lon)
        else:
            assert carried.source == "place" == geotagged.source
            assert tweet["place"]["place_type"] in ("city", "poi", "neighborhood")
            assert geotagged.location.name == tweet["place"]["name"]
    for message, _post in routed.to_predict:
        tweet = json.loads(message.value)
        assert not tweet.get("coordinates")
        assert (tweet.get("place") or {}).get("place_type") not in ("city", "poi", "neighborhood")
    assert len(routed.carried) > 100 and len(routed.to_predict) > 1000  # both routes used


def test_one_bad_post_is_its_own_outcome_and_its_neighbours_go_on():
    good = [json.dumps({"id": f"p{i}", "text": "hello"}).encode() for i in range(16)]
    routed = do_route([*good[:8], POISONED_PLACE, *good[8:]])
    assert [d.input.offset for d in routed.dead_letters] == [8]
    assert [m.offset for m, _ in routed.to_predict] == [*range(8), *range(9, 17)]


def test_a_lone_surrogate_is_repaired_not_fatal():
    # JSON may spell half a surrogate pair; it could not be encoded into the events
    gps = b'{"id_str": "1", "text": "a \\ud83d b", "user": {"location": "\\udfff"}, '
    gps += b'"coordinates": {"coordinates": [-90.05, 35.15]}}'
    (carried,) = do_route([gps]).carried
    labeled = LabeledPost.model_validate_json(carried.labeled)
    assert labeled.post.text == "a \ufffd b" and labeled.post.user_location == "\ufffd"


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
        (POISONED_PLACE, "invalid-place"),
        (POISONED_PLACE.replace(b"97", b"NaN"), "invalid-place"),
        (POISONED_PLACE.replace(b"97", b"1e999"), "invalid-place"),
        (
            b'{"id_str": "1", "text": "x", "coordinates": {"coordinates": [200, 95]}}',
            "invalid-coordinates",
        ),
        (
            b'{"id_str": "1", "text": "x", "coordinates": {"coordinates": [1]}}',
            "invalid-coordinates",
        ),
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
