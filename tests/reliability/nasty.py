"""A deterministic corpus of nasty payloads, most of them mutations of real tweets: what a
live stream's worst day looks like. Used by the fuzz tests and the worker test."""

from __future__ import annotations

import json
import random

CONTROL_NOTICES = [
    b'{"delete":{"status":{"id":881234567890,"id_str":"881234567890","user_id":1,"user_id_str":"1"},"timestamp_ms":"1498600000000"}}',
    b'{"limit":{"track":77,"timestamp_ms":"1498600000000"}}',
    b'{"scrub_geo":{"user_id":1,"user_id_str":"1","up_to_status_id":2,"up_to_status_id_str":"2"}}',
    b'{"status_withheld":{"id":1,"user_id":2,"withheld_in_countries":["DE"]}}',
]


# A well-formed tweet whose city place lies off the globe (box centre latitude 97): it once
# made route() raise, and the worker lose its whole batch
POISONED_PLACE = json.dumps(
    {
        "id_str": "666",
        "text": "a place that is nowhere",
        "place": {
            "id": "x",
            "name": "Nowhere",
            "full_name": "Nowhere, TN",
            "place_type": "city",
            "country_code": "US",
            "bounding_box": {
                "type": "Polygon",
                "coordinates": [[[-90, 96], [-90, 98], [-89, 98], [-89, 97]]],
            },
        },
    }
).encode()


def mutations(tweet: bytes, rng: random.Random) -> list[bytes]:
    """Broken variants of one real tweet (each must be dead-lettered)."""
    obj = json.loads(tweet)
    cut = rng.randrange(1, len(tweet) - 1)
    wrong_user = {**obj, "user": [obj.get("user")]}
    wrong_text = {**obj, "text": rng.choice([42, None, ["a"], {"x": 1}, True])}
    wrong_text.pop("extended_tweet", None)
    wrong_text.pop("retweeted_status", None)  # a retweet's text is the original's
    no_id = {k: v for k, v in obj.items() if k not in ("id", "id_str")}
    no_text = {
        k: v
        for k, v in obj.items()
        if k not in ("text", "full_text", "extended_tweet", "retweeted_status")
    }
    bad_coords = {**obj, "coordinates": {"type": "Point", "coordinates": [200.0, 95.0]}}
    bad_date = {**obj, "created_at": "yesterday-ish"}
    return [
        tweet[:cut],  # truncated JSON
        tweet.replace(b'"', b"'", 3),  # not JSON any more
        json.dumps(wrong_user).encode(),
        json.dumps(wrong_text).encode(),
        json.dumps(no_id).encode(),
        json.dumps(no_text).encode(),
        json.dumps(bad_coords).encode(),
        json.dumps(bad_date).encode(),
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + b"\xff",  # binary junk
        tweet[:cut] + b"\xc3\x28" + tweet[cut:],  # invalid UTF-8 inside
    ]


def huge(rng: random.Random) -> list[bytes]:
    """Inputs over the size limits or built to hurt a parser (all dead-lettered)."""
    return [
        b"[" * 200_000 + b"]" * 200_000,  # deep nesting, over max_payload_bytes too
        json.dumps({"id": "h1", "text": "x" * 100_000}).encode(),  # 100 KB text
        json.dumps({"id": "h2", "text": "y", "nested": {"a": [list(range(50))] * 2000}}).encode(),
        # over max_payload_bytes (1,000,000) yet under Kafka's default message limit
        b'{"id": "h3", "text": ' + b'"' + b"z" * 1_020_000 + b'"}',
        b"",
        b"null",
        b"[]",
        b"0",
    ]


def odd_but_valid(rng: random.Random, n: int) -> list[bytes]:
    """Posts that look odd but are posts (each must be geotagged)."""
    out = []
    for i in range(n):
        text = rng.choice(
            [
                "",
                "\x00\x01\x02 control characters \u202e reversed",
                "🤠🔥 " * 50,
                "a" * 5_000,
                "line\nbreaks\rand\ttabs",
                "<script>alert(1)</script>",
            ]
        )
        out.append(
            json.dumps({"id": f"odd-{i}", "text": text, "user_location": "Memphis, TN"}).encode()
        )
    return out


def corpus(tweets: list[bytes], seed: int = 0) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(bad: to be dead-lettered, control notices: skipped, odd but valid: geotagged)."""
    rng = random.Random(seed)
    bad = [m for tweet in tweets for m in mutations(tweet, rng)] + huge(rng)
    return bad, list(CONTROL_NOTICES), odd_but_valid(rng, 30)
