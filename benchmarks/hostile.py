"""``contrastgeo hostile-bench``: how long the worker's routing takes on crafted inputs of
the largest size it accepts, one shape per way an attacker could try to stall it.

Each shape is a payload of about ``size`` bytes (default: just under the worker's 1 MB
``max_payload_bytes``) with a Kafka key of ``key_bytes``. ``route`` runs on the event loop,
so a slow input would stop heartbeats and HTTP probes: each is timed (best of
``repeats``) and its outcome and the largest event it makes are recorded, with the
record limit the worker enforces (``max_output_bytes``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stream.routing import Message, Rules, route
from stream.settings import WorkerSettings


def _tweet(**fields: Any) -> dict[str, Any]:
    tweet: dict[str, Any] = {"id_str": "1", "text": "hello", "user": {"id_str": "2"}}
    tweet.update(fields)
    return tweet


def _fill(size: int, make: Callable[[str], dict[str, Any]], unit: str = "<") -> bytes:
    """``make(filler)`` serialized, the filler sized so that the payload is about ``size``."""
    empty = len(json.dumps(make("")))
    per_unit = max(1, (len(json.dumps(make(unit * 100))) - empty) // 100)
    return json.dumps(make(unit * max(0, (size - empty) // per_unit))).encode()


def _place(full_name: str) -> dict[str, Any]:
    ring = [[-90.1, 35.0], [-90.1, 35.2], [-89.9, 35.2], [-89.9, 35.0]]
    return {
        "id": "p1",
        "name": "Memphis",
        "full_name": full_name,
        "place_type": "city",
        "country_code": "US",
        "bounding_box": {"type": "Polygon", "coordinates": [ring]},
    }


SHAPES: dict[str, Callable[[int], bytes]] = {
    "source of '<' (quadratic tag stripping)": lambda n: _fill(n, lambda f: _tweet(source=f)),
    "source of '<a' pairs": lambda n: _fill(n, lambda f: _tweet(source=f), "<a"),
    "text of '<'": lambda n: _fill(n, lambda f: _tweet(text=f)),
    "place full_name (written twice into events)": lambda n: _fill(
        n, lambda f: _tweet(place=_place(f))
    ),
    "user.id_str a long list": lambda n: _fill(
        n, lambda f: _tweet(user={"id_str": list(range(len(f) // 8))})
    ),
    "post id (key and value)": lambda n: _fill(n, lambda f: _tweet(id_str="9" + f), "9"),
    "user description and location": lambda n: _fill(
        n, lambda f: _tweet(user={"id_str": "2", "description": f, "location": "Memphis"}), "é"
    ),
    "deep nesting": lambda n: b"[" * (n // 2) + b"]" * (n // 2),
    "many keys": lambda n: _fill(
        n, lambda f: {**_tweet(), **{f"k{i:07d}": 0 for i in range(len(f) // 15)}}
    ),
    "huge integer id": lambda n: b'{"id": ' + b"9" * (n - 20) + b', "text": "x"}',
    "escaped control characters": lambda n: _fill(n, lambda f: _tweet(text=f), "\\u0001"),
}


def hostile(settings: WorkerSettings, size: int, key_bytes: int, repeats: int = 3) -> dict:
    rules = Rules.of(settings)
    rows = []
    for name, make in SHAPES.items():
        payload = make(size)
        message = Message("posts", 0, 0, b"k" * key_bytes, payload)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            routed = route([message], rules)
            best = min(best, time.perf_counter() - start)
        outcome = (
            f"dead letter ({routed.dead_letters[0].reason})"
            if routed.dead_letters
            else "carried"
            if routed.carried
            else "to the model"
            if routed.to_predict
            else "skipped"
        )
        largest = max(
            [len(d.to_bytes()) for d in routed.dead_letters]
            + [len(c.labeled) + len(c.key) for c in routed.carried]
            + [len(c.geotagged) + len(c.key) for c in routed.carried]
            + [0]
        )
        rows.append(
            {
                "shape": name,
                "payload_bytes": len(payload),
                "key_bytes": key_bytes,
                "route_ms": round(1000 * best, 2),
                "outcome": outcome,
                "largest_event_bytes": largest,
            }
        )
    return {
        "size": size,
        "max_payload_bytes": settings.max_payload_bytes,
        "max_output_bytes": settings.max_output_bytes,
        "rows": rows,
    }


def hostile_markdown(results: dict) -> str:
    lines = [
        f"Crafted inputs of about {results['size']:,} bytes (the worker accepts up to "
        f"{results['max_payload_bytes']:,}; outputs are capped at "
        f"{results['max_output_bytes']:,} bytes). Routing time is the best of 3.",
        "",
        "| shape | payload bytes | key bytes | route ms | outcome | largest event bytes |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['shape']} | {r['payload_bytes']:,} | {r['key_bytes']:,} | "
            f"{r['route_ms']:.1f} | {r['outcome']} | {r['largest_event_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"
