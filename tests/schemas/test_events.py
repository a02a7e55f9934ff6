"""Event schemas: the checked-in JSON Schema files match the models, and events survive a
round trip through their wire form."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.events import (
    AreaProbability,
    DeadLetter,
    EventLocation,
    GeotaggedPost,
    InputRef,
    LabeledPost,
    ModelUpdated,
    ScoredLocation,
)
from schemas.generate import main as generate_main
from schemas.generate import rendered, stale
from schemas.posts import Post

REF = InputRef(topic="posts", partition=2, offset=41)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_checked_in_json_schemas_match_the_models():
    assert stale() == [], "run: python -m schemas.generate"
    assert generate_main(["--check"]) == 0


def test_drift_is_detected(tmp_path):
    for name, text in rendered().items():
        (tmp_path / name).write_text(text)
    assert stale(tmp_path) == []
    (tmp_path / "dead-letter.schema.json").write_text("{}\n")
    assert stale(tmp_path) == ["dead-letter.schema.json"]


@pytest.mark.parametrize(
    "event",
    [
        GeotaggedPost(
            post_id="1",
            source="model",
            location=EventLocation(id="4641239", name="Memphis", lat=35.1, lon=-90.0),
            score=0.6,
            candidates=[
                ScoredLocation(
                    id="4641239", name="Memphis", lat=35.1, lon=-90.0, score=0.6, tlc=0.5, tlm=0.7
                )
            ],
            admin=AreaProbability(name="Tennessee", country="US", probability=0.8),
            country=AreaProbability(name="US", country="US", probability=1.0),
            model_version="v1",
            received_at=NOW,
            input=REF,
        ),
        GeotaggedPost(
            post_id="2", source="model", location=None, abstained=True, received_at=NOW, input=REF
        ),
        LabeledPost(
            post=Post(id="3", text="hi", created_at=NOW),
            source="gps",
            lat=1.0,
            lon=2.0,
            received_at=NOW,
            input=REF,
        ),
        DeadLetter(
            input=REF,
            key=None,
            payload=b"\xff\xfe not utf-8",
            payload_size=13,
            payload_sha256="ab" * 32,
            reason="invalid-utf8",
            error_class="InvalidPost",
        ),
        ModelUpdated(
            model_version="v2", collection="locations-v2", alias="locations", previous_version="v1"
        ),
    ],
)
def test_events_round_trip_through_json(event):
    wire = event.to_bytes()
    assert type(event).model_validate_json(wire) == event
    version = 2 if isinstance(event, GeotaggedPost) else 1  # v2: admin and country
    assert f'"schema_version":{version}'.encode() in wire


def test_geotagged_posts_of_version_1_still_read():
    """Events written before version 2 (still in the topic) parse, without the areas."""
    v1 = {"schema_version": 1, "post_id": "1", "source": "model", "location": None}
    old = GeotaggedPost.model_validate({**v1, "received_at": NOW, "input": REF.model_dump()})
    assert old.schema_version == 1 and old.admin is None and old.country is None
    with pytest.raises(ValidationError, match="schema_version"):
        GeotaggedPost.model_validate({**v1, "schema_version": 3, "received_at": NOW, "input": REF})


def test_dead_letter_keeps_arbitrary_bytes():
    raw = bytes(range(256))
    letter = DeadLetter(
        input=REF,
        payload=raw,
        payload_size=256,
        payload_sha256="0" * 64,
        reason="x",
        error_class="E",
    )
    assert DeadLetter.model_validate_json(letter.to_bytes()).payload == raw


def test_events_refuse_unknown_fields_and_bad_values():
    with pytest.raises(ValidationError):
        GeotaggedPost(post_id="1", source="satellite", location=None, received_at=NOW, input=REF)
    with pytest.raises(ValidationError):
        EventLocation(lat=91, lon=0)
    with pytest.raises(ValidationError):
        ModelUpdated.model_validate(
            {"model_version": "v", "collection": "c", "alias": "a", "extra": 1}
        )
