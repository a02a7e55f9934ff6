"""Payload normalization: real v1.1 lines from the shared data, v2, minimal, and bad input."""

import gzip
import itertools
import json

import pytest

from schemas import ControlMessage, InvalidPost, parse_post
from tests.support.data import shared_data


@pytest.fixture(scope="module")
def real_tweets() -> list[dict]:
    path = shared_data("us-south-tweets", "tweets.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, 3000)]


def test_real_v1_tweets_all_parse(real_tweets):
    posts = [parse_post(json.dumps(t).encode()) for t in real_tweets]
    assert [p.id for p in posts] == [t["id_str"] for t in real_tweets]
    assert all(p.created_at is not None and p.created_at.year == 2017 for p in posts)
    assert any(p.place and p.place.place_type == "city" for p in posts)
    assert any(p.coordinates for p in posts)
    assert not any("<a href" in p.source for p in posts)


def test_real_truncated_tweet_uses_extended_full_text(real_tweets):
    tweet = next(t for t in real_tweets if t.get("truncated") and "extended_tweet" in t)
    post = parse_post(tweet)
    assert post.text == tweet["extended_tweet"]["full_text"]
    assert len(post.text) > len(tweet["text"]) - 5  # the compat text ends with "… https://t.co"


def test_real_place_and_coordinates(real_tweets):
    tweet = next(t for t in real_tweets if t.get("coordinates") and t.get("place"))
    post = parse_post(tweet)
    lon, lat = tweet["coordinates"]["coordinates"]
    assert (post.coordinates.lat, post.coordinates.lon) == (lat, lon)
    min_lon, min_lat, max_lon, max_lat = post.place.bbox
    assert min_lon <= max_lon and min_lat <= max_lat
    assert post.place.full_name == tweet["place"]["full_name"]
    assert post.user_location == (tweet["user"]["location"] or "")


V1 = {
    "id_str": "42",
    "created_at": "Mon Jun 26 17:59:47 +0000 2017",
    "text": "RT @a: short…",
    "truncated": False,
    "source": '<a href="http://x">Twitter for iPhone</a>',
    "user": {
        "id_str": "7",
        "screen_name": "bob",
        "location": "Memphis, TN",
        "description": "bio",
        "time_zone": "Central Time (US & Canada)",
    },
    "retweeted_status": {
        "text": "short…",
        "truncated": True,
        "extended_tweet": {"full_text": "the whole original text"},
    },
    "coordinates": None,
    "place": None,
    "lang": "en",
}


def test_v1_retweet_takes_the_original_full_text_and_retweeter_metadata():
    post = parse_post(V1)
    assert post.text == "the whole original text"
    assert post.is_retweet
    assert (post.user_location, post.time_zone, post.source) == (
        "Memphis, TN",
        "Central Time (US & Canada)",
        "Twitter for iPhone",
    )


def test_v2_payload_with_includes():
    payload = {
        "data": {
            "id": "99",
            "text": "hello",
            "author_id": "5",
            "lang": "en",
            "created_at": "2023-05-01T12:00:00.000Z",
            "geo": {
                "place_id": "p1",
                "coordinates": {"type": "Point", "coordinates": [-90.0, 35.1]},
            },
        },
        "includes": {
            "users": [{"id": "5", "username": "amy", "location": "Bluff City", "description": "d"}],
            "places": [
                {
                    "id": "p1",
                    "full_name": "Memphis, TN",
                    "name": "Memphis",
                    "place_type": "city",
                    "country_code": "US",
                    "geo": {"bbox": [-90.1, 35.0, -89.7, 35.3]},
                }
            ],
        },
    }
    post = parse_post(json.dumps(payload))
    assert (post.id, post.text, post.user_location, post.user_name) == (
        "99",
        "hello",
        "Bluff City",
        "amy",
    )
    assert post.place.name == "Memphis" and post.place.bbox == (-90.1, 35.0, -89.7, 35.3)
    assert (post.coordinates.lat, post.coordinates.lon) == (35.1, -90.0)
    assert post.created_at.year == 2023


def test_v2_note_tweet_is_the_full_text():
    payload = {"data": {"id": "1", "text": "cut…", "note_tweet": {"text": "long text"}}}
    assert parse_post(payload).text == "long text"


def test_minimal_form():
    post = parse_post(b'{"id": 12, "text": "just text"}')
    assert (post.id, post.text, post.place) == ("12", "just text", None)


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"not json", "not-json"),
        (b'{"id": 1, "text": "x"', "not-json"),
        (b"\xff\xfe bad", "invalid-utf8"),
        (b"[1, 2]", "not-an-object"),
        (b'{"foo": 1}', "unknown-format"),
        (b'{"id": 1, "text": 5}', "invalid-field"),
        (b'{"id": "", "text": "x"}', "missing-id"),
        (b'{"id_str": "1", "user": {}}', "missing-text"),
        (b'{"id_str": "1", "text": "x", "user": "bob"}', "wrong-type"),
        (
            b'{"id_str": "1", "text": "x", "coordinates": {"coordinates": [500, 1]}}',
            "invalid-coordinates",
        ),
        (
            b'{"data": {"id": "1", "text": "x", "geo": {"coordinates": "here"}}}',
            "wrong-type",
        ),
        (b'{"data": {"id": "1", "text": "x"}, "includes": {"users": 3}}', "wrong-type"),
        (b'{"data": {"id": "1"}}', "missing-text"),
    ],
)
def test_bad_payloads_name_their_reason(raw, reason):
    with pytest.raises(InvalidPost) as err:
        parse_post(raw)
    assert err.value.reason == reason


def test_place_boxes_off_the_globe_are_refused_and_the_antimeridian_is_not():
    def v2_place(bbox):
        return {
            "data": {"id": "1", "text": "x", "geo": {"place_id": "p"}},
            "includes": {"places": [{"id": "p", "name": "P", "geo": {"bbox": bbox}}]},
        }

    for bbox in ([-90, 96, -89, 98], [-90, 35, -89, float("nan")], [-190, 35, -189, 36]):
        with pytest.raises(InvalidPost) as err:
            parse_post(v2_place(bbox))
        assert err.value.reason == "invalid-place"
    fiji = parse_post(v2_place([177.0, -19.0, -179.0, -16.0])).place  # west > east
    lat, lon = fiji.centroid
    assert lat == -17.5 and lon == 179.0


@pytest.mark.parametrize("notice", ['{"delete": {"status": {"id": 1}}}', '{"limit": {"track": 5}}'])
def test_stream_control_messages_are_not_posts(notice):
    with pytest.raises(ControlMessage):
        parse_post(notice)
