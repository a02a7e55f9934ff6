"""Well-formed Twitter payloads (v1.1 and v2) with odd values in every nested field: places
and their boxes, coordinates, user fields, entities, dates, ids; huge numbers, NaN and
infinities, empty and unicode strings (lone surrogates included), wrong types now and then.
The shape is right, so these reach past the parser's first checks into the code that reads
places and builds events; each must still get exactly one outcome.

``payload(rng)`` draws one from a ``random.Random``: the fuzz tests pass hypothesis's
``st.randoms()`` (so it searches and shrinks), the worker test a seeded one.
"""

from __future__ import annotations

import json
import math
import random

ODD_NUMBERS = [
    0,
    -0.0,
    1e308,
    -1e308,
    10**30,
    -(10**30),
    math.nan,
    math.inf,
    -math.inf,
    90.0000001,
    -180.5,
    97,
    2**63,
    1e-320,
]
ODD_STRINGS = [
    "",
    " ",
    "\ud800",  # a lone surrogate (JSON spells it "\\ud800")
    "\udfff\ud83d",
    "🤠" * 40,
    "\x00\x1f",
    "\u202e\u200b",
    "Memphis, TN",
    "x" * 3000,
    "null",
    "NaN",
    "<b>&amp;</b>",
    "ﷺ 𝕏 é\u0301",
]
PLACE_TYPES = ["city", "admin", "country", "poi", "neighborhood", "", "CITY", "planet"]


def _number(rng: random.Random, low: float, high: float) -> float | int:
    """A coordinate: in range most of the time, odd otherwise."""
    if rng.random() < 0.85:
        return rng.uniform(low, high)
    return rng.choice(ODD_NUMBERS)


def _string(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(ODD_STRINGS)
    return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(0, 30)))


def _odd(rng: random.Random):
    """Any JSON value, the wrong type for most fields."""
    return rng.choice(
        [
            None,
            True,
            rng.choice(ODD_NUMBERS),
            _string(rng),
            [],
            {},
            [_string(rng)],
            {"x": rng.choice(ODD_NUMBERS)},
        ]
    )


def _maybe(rng: random.Random, value, odd_rate: float = 0.03):
    """The value, or (rarely) an odd one in its place, or (rarely) left out (None)."""
    r = rng.random()
    if r < odd_rate:
        return _odd(rng)
    if r < odd_rate + 0.05:
        return None
    return value


def _point(rng: random.Random) -> list:
    point = [_number(rng, -180, 180), _number(rng, -90, 90)]
    return point if rng.random() > 0.05 else point[: rng.randrange(0, 2)] + [1, 2][:1]


def _ring(rng: random.Random) -> list:
    west, east = sorted([_number(rng, -180, 180), _number(rng, -180, 180)], key=_sortable)
    south, north = sorted([_number(rng, -90, 90), _number(rng, -90, 90)], key=_sortable)
    ring = [[west, south], [west, north], [east, north], [east, south]]
    if rng.random() < 0.1:
        ring = rng.choice([[], [[west]], [[west, south, 3]], ring[:1], [["a", "b"]] * 4])
    return ring


def _sortable(x: float) -> float:
    return -math.inf if isinstance(x, float) and math.isnan(x) else x


def _user_v1(rng: random.Random) -> dict:
    return {
        "id_str": _maybe(rng, str(rng.randrange(10**12))),
        "screen_name": _maybe(rng, _string(rng)),
        "location": _maybe(rng, _string(rng)),
        "description": _maybe(rng, _string(rng)),
        "time_zone": _maybe(rng, _string(rng)),
        "followers_count": rng.choice(ODD_NUMBERS),
    }


def _place_v1(rng: random.Random) -> dict:
    return {
        "id": _maybe(rng, f"{rng.randrange(16**16):016x}"),
        "name": _maybe(rng, _string(rng)),
        "full_name": _maybe(rng, _string(rng)),
        "place_type": _maybe(rng, rng.choice(PLACE_TYPES)),
        "country_code": _maybe(rng, rng.choice(["US", "", "ZZ", "us"])),
        "bounding_box": _maybe(rng, {"type": "Polygon", "coordinates": [_ring(rng)]}),
    }


def _entities(rng: random.Random) -> dict:
    return {
        "hashtags": [{"text": _string(rng), "indices": [rng.choice(ODD_NUMBERS), 3]}],
        "urls": _maybe(rng, [{"url": _string(rng)}]),
        "user_mentions": _maybe(rng, [{"id": rng.choice(ODD_NUMBERS)}]),
    }


def v1(rng: random.Random, depth: int = 0) -> dict:
    tweet = {
        "id_str": str(rng.randrange(1, 10**19)) if rng.random() > 0.05 else _odd(rng),
        "created_at": _maybe(rng, "Mon Jun 26 17:59:47 +0000 2017"),
        "text": _maybe(rng, _string(rng), odd_rate=0.03),
        "source": _maybe(rng, f'<a href="x">{_string(rng)}</a>'),
        "lang": _maybe(rng, rng.choice(["en", "und", ""])),
        "user": _maybe(rng, _user_v1(rng)),
        "place": _maybe(rng, _place_v1(rng), odd_rate=0.05) if rng.random() < 0.7 else None,
        "coordinates": (
            _maybe(rng, {"type": "Point", "coordinates": _point(rng)}, odd_rate=0.05)
            if rng.random() < 0.4
            else None
        ),
        "entities": _maybe(rng, _entities(rng)),
        "truncated": rng.random() < 0.3,
    }
    if rng.random() < 0.3:
        tweet["extended_tweet"] = _maybe(rng, {"full_text": _maybe(rng, _string(rng))})
    if depth == 0 and rng.random() < 0.15:
        tweet["retweeted_status"] = v1(rng, depth + 1)
    return tweet


def v2(rng: random.Random) -> dict:
    author, place_id = str(rng.randrange(10**12)), f"{rng.randrange(16**16):016x}"
    box = [_number(rng, -180, 180), _number(rng, -90, 90)]
    box += [_number(rng, -180, 180), _number(rng, -90, 90)]
    return {
        "data": {
            "id": str(rng.randrange(1, 10**19)) if rng.random() > 0.05 else _odd(rng),
            "text": _maybe(rng, _string(rng), odd_rate=0.03),
            "author_id": _maybe(rng, author),
            "created_at": _maybe(rng, "2022-03-01T12:00:00.000Z"),
            "lang": _maybe(rng, "en"),
            "geo": _maybe(
                rng,
                {
                    "place_id": _maybe(rng, place_id),
                    "coordinates": (
                        _maybe(rng, {"type": "Point", "coordinates": _point(rng)})
                        if rng.random() < 0.4
                        else None
                    ),
                },
            ),
            "entities": _maybe(rng, _entities(rng)),
        },
        "includes": {
            "users": [
                _maybe(
                    rng,
                    {
                        "id": author,
                        "username": _maybe(rng, _string(rng)),
                        "location": _maybe(rng, _string(rng)),
                        "description": _maybe(rng, _string(rng)),
                    },
                )
            ],
            "places": [
                _maybe(
                    rng,
                    {
                        "id": place_id,
                        "name": _maybe(rng, _string(rng)),
                        "full_name": _maybe(rng, _string(rng)),
                        "place_type": _maybe(rng, rng.choice(PLACE_TYPES)),
                        "country_code": _maybe(rng, "US"),
                        "geo": _maybe(rng, {"type": "Feature", "bbox": _maybe(rng, box)}),
                    },
                )
            ],
        },
    }


def payload(rng: random.Random) -> bytes:
    """One payload, v1.1 or v2, as JSON bytes (NaN and Infinity spelled as Python's json
    reads them)."""
    obj = v1(rng) if rng.random() < 0.6 else v2(rng)
    return json.dumps(obj).encode()


def payloads(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [payload(rng) for _ in range(n)]
