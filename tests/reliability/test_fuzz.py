"""Bad input, generated: every input lands in exactly one place (dead letter with a reason,
skipped control notice, or a valid post with its events), nothing raises. Over 12,500
generated inputs (hypothesis: random bytes, JSON, tweet-shaped objects, well-formed v1.1/v2
tweets with odd values in every nested field) plus a corpus of mutated real tweets."""

from __future__ import annotations

import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import DeadLetter, GeotaggedPost, LabeledPost
from schemas.posts import Post
from stream.routing import Message, Rules, route
from stream.settings import WorkerSettings
from tests.reliability import wellformed
from tests.reliability.nasty import corpus
from tests.support.data import real_tweets

S = WorkerSettings()
FUZZ = settings(max_examples=2_500, deadline=None, suppress_health_check=list(HealthCheck))

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = [
    "id",
    "id_str",
    "text",
    "full_text",
    "user",
    "data",
    "includes",
    "place",
    "coordinates",
    "delete",
    "extended_tweet",
]
tweetish = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=8)


def check(payloads: list[bytes | None]):
    messages = [Message("posts", 0, i, None, p) for i, p in enumerate(payloads)]
    routed = route(messages, Rules.of(S))
    placed = (
        [d.input.offset for d in routed.dead_letters]
        + [m.offset for m, _ in routed.skipped]
        + [c.message.offset for c in routed.carried]
        + [m.offset for m, _ in routed.to_predict]
    )
    assert sorted(placed) == list(range(len(payloads)))  # each exactly once
    for letter in routed.dead_letters:
        original = payloads[letter.input.offset] or b""
        assert letter.reason and letter.payload == original[: S.dead_letter_max_payload_bytes]
        assert letter.payload_size == len(original)
        assert DeadLetter.model_validate_json(letter.to_bytes()) == letter
    for _, post in routed.to_predict:
        assert isinstance(post, Post) and post.id
        assert Post.model_validate_json(post.model_dump_json()) == post  # encodable
    for carried in routed.carried:
        labeled = LabeledPost.model_validate_json(carried.labeled)
        geotagged = GeotaggedPost.model_validate_json(carried.geotagged)
        assert carried.key == labeled.post.id.encode() == geotagged.post_id.encode()
    return routed


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(payload):
    check([payload])


@FUZZ
@given(json_values)
def test_random_json(value):
    check([json.dumps(value).encode()])


@FUZZ
@given(tweetish)
def test_tweet_shaped_objects(obj):
    check([json.dumps(obj).encode()])


@FUZZ
@given(st.text(max_size=300), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_random_text_in_any_encoding(text, encoding):
    check([text.encode(encoding, "replace")])


@FUZZ
@given(st.integers(0, 2**64))
def test_well_formed_tweets_with_odd_values(seed):
    check(wellformed.payloads(2, seed))  # st.randoms() would shrink, but 50x slower


def test_well_formed_tweets_reach_every_route():
    """The generator is no parser test only: its tweets are carried (GPS, place), sent to
    the model and dead-lettered for their places and coordinates, all in one batch."""
    routed = check(wellformed.payloads(3000))
    reasons = {d.reason for d in routed.dead_letters}
    assert {"invalid-place", "invalid-coordinates", "wrong-type"} <= reasons
    assert {c.source for c in routed.carried} == {"gps", "place"}
    assert len(routed.to_predict) > 300 and len(routed.carried) > 300


def test_mutated_real_tweets_are_dead_lettered_and_valid_ones_kept():
    tweets = real_tweets(300)
    bad, control, odd = corpus(tweets)
    payloads = tweets + bad + control + odd
    messages = [Message("posts", 0, i, None, p) for i, p in enumerate(payloads)]
    routed = route(messages, Rules.of(S))
    assert len(routed.dead_letters) == len(bad)
    assert sorted(d.payload_sha256 for d in routed.dead_letters) == sorted(
        hashlib.sha256(b).hexdigest() for b in bad
    )
    assert len(routed.skipped) == len(control)
    assert len(routed.carried) + len(routed.to_predict) == len(tweets) + len(odd)
    assert len(bad) >= 3000  # 10 mutations of each real tweet + the huge ones
