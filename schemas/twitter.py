"""Payload -> ``Post``: Twitter API v1.1, Twitter API v2, and a minimal ``{"id", "text"}``.

``parse_post`` is the one entry point the stream and the dataset readers share. It raises
``InvalidPost`` (with a short machine-readable ``reason``) for anything that is not a post,
and ``ControlMessage`` for stream notices (deletes, rate-limit notices ...) that carry no
post and are skipped by rule.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.posts import Coordinates, Place, Post

CONTROL_KEYS = (
    "delete",
    "limit",
    "scrub_geo",
    "status_withheld",
    "user_withheld",
    "disconnect",
    "warning",
    "friends",
)


class InvalidPost(ValueError):
    """Not a usable post. ``reason`` is a short code (``not-json``, ``missing-text`` ...)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ControlMessage(Exception):
    """A stream control notice (e.g. ``{"delete": ...}``): no post, nothing to geotag."""

    def __init__(self, kind: str):
        self.kind = kind
        super().__init__(kind)


def parse_post(raw: bytes | str | dict[str, Any]) -> Post:
    """Normalize one payload (bytes, JSON text or an already decoded object)."""
    payload = _decode(raw)
    for key in CONTROL_KEYS:
        if key in payload:
            raise ControlMessage(key)
    try:
        if "data" in payload:
            return post_from_v2(payload)
        if "user" in payload or "id_str" in payload:
            return post_from_v1(payload)
        if "id" in payload and "text" in payload:
            return Post.model_validate({**payload, "id": _id(payload.get("id"))})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidPost("invalid-field", f"{where}: {first['msg']}") from exc
    raise InvalidPost("unknown-format", f"keys: {sorted(payload)[:8]}")


def _decode(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPost("invalid-utf8", str(exc)) from exc
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer of > 4,300 digits
        raise InvalidPost("not-json", str(exc)[:200]) from exc
    if not isinstance(payload, dict):
        raise InvalidPost("not-an-object", type(payload).__name__)
    return payload


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise InvalidPost("missing-id", repr(value)[:50])
    return str(value)


def _optional_id(value: Any) -> str:
    """An id that may be absent (a user's): a string or an integer, else an error (a list
    turned into text would be an unbounded "id")."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidPost("invalid-id", f"an id is {type(value).__name__}, not a string")
    return str(value)


def _str(obj: dict[str, Any] | None, key: str) -> str:
    """A string field, or "" when absent/null; wrong types are an error."""
    value = (obj or {}).get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidPost("wrong-type", f"{key} is {type(value).__name__}")
    return value


def _object(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidPost("wrong-type", f"{key} is {type(value).__name__}")
    return value


def _objects(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A list of objects (v2's ``includes``); anything else in it is ignored."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPost("wrong-type", f"{key} is {type(value).__name__}")
    return [item for item in value if isinstance(item, dict)]


def strip_tags(value: str) -> str:
    """Remove ``<...>`` tags in one pass (linear time: a regular expression like
    ``<[^>]+>`` rescans the rest of the text from every ``<`` that has no ``>``, quadratic
    on a crafted input). A ``<`` with no ``>`` after it is text."""
    parts, start = [], 0
    while (open_at := value.find("<", start)) >= 0:
        close_at = value.find(">", open_at + 1)
        if close_at < 0:
            break
        parts.append(value[start:open_at])
        start = close_at + 1
    parts.append(value[start:])
    return "".join(parts)


def _source(value: str) -> str:
    """'<a href="...">Twitter for iPhone</a>' -> 'Twitter for iPhone'."""
    return html.unescape(strip_tags(value)).strip()


def _created_at(value: str) -> datetime | None:
    if not value:
        return None
    for fmt in ("%a %b %d %H:%M:%S %z %Y", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value.replace("Z", "+0000"), fmt)
        except ValueError:
            continue
    raise InvalidPost("invalid-field", f"created_at {value[:40]!r}")


def _point(geo: dict[str, Any] | None) -> Coordinates | None:
    """GeoJSON point ``{"type": "Point", "coordinates": [lon, lat]}``."""
    if not geo:
        return None
    coords = geo.get("coordinates")
    if not (isinstance(coords, list) and len(coords) == 2):
        raise InvalidPost("invalid-coordinates", f"not [lon, lat]: {str(coords)[:80]}")
    try:
        return Coordinates(lat=coords[1], lon=coords[0])
    except ValidationError as exc:
        raise InvalidPost(
            "invalid-coordinates", f"[lon, lat] = {str(coords)[:80]} is not on the globe"
        ) from exc


def _bbox_from_polygon(polygon: Any) -> tuple[float, float, float, float] | None:
    """The box around a GeoJSON polygon's outer ring; None when there is no usable ring."""
    try:
        ring = polygon["coordinates"][0]
        lons = [float(p[0]) for p in ring]
        lats = [float(p[1]) for p in ring]
        return min(lons), min(lats), max(lons), max(lats)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _bbox_from_list(bbox: Any) -> tuple[float, float, float, float] | None:
    """v2's ``[west, south, east, north]``."""
    try:
        west, south, east, north = (float(x) for x in bbox)
    except (TypeError, ValueError):
        return None
    return west, south, east, north


def _place(place: dict[str, Any], bbox: tuple[float, float, float, float] | None) -> Place:
    try:
        return Place(
            id=_str(place, "id"),
            name=_str(place, "name"),
            full_name=_str(place, "full_name"),
            place_type=_str(place, "place_type"),
            country_code=_str(place, "country_code"),
            bbox=bbox,
        )
    except ValidationError as exc:
        raise InvalidPost("invalid-place", exc.errors()[0]["msg"][:200]) from exc


def post_from_v1(tweet: dict[str, Any]) -> Post:
    """Twitter API v1.1 status (stream or REST, compat or extended mode)."""
    post_id = _id(tweet.get("id_str") or tweet.get("id"))
    content = _object(tweet, "retweeted_status") or tweet
    text = _full_text_v1(content)
    user = _object(tweet, "user") or {}
    place = _object(tweet, "place")
    return Post(
        id=post_id,
        text=text,
        lang=_str(tweet, "lang"),
        created_at=_created_at(_str(tweet, "created_at")),
        user_id=_optional_id(user.get("id_str") or user.get("id")),
        user_name=_str(user, "screen_name"),
        user_location=_str(user, "location"),
        user_description=_str(user, "description"),
        time_zone=_str(user, "time_zone"),
        source=_source(_str(tweet, "source")),
        is_retweet=content is not tweet,
        coordinates=_point(_object(tweet, "coordinates")),
        place=_place(place, _bbox_from_polygon(place.get("bounding_box"))) if place else None,
    )


def _full_text_v1(status: dict[str, Any]) -> str:
    """``extended_tweet.full_text`` when the status is truncated (streaming compat mode),
    ``full_text`` in extended mode, else ``text``."""
    extended = _object(status, "extended_tweet")
    if extended and extended.get("full_text") is not None:
        return _str(extended, "full_text")
    for key in ("full_text", "text"):
        if status.get(key) is not None:
            return _str(status, key)
    raise InvalidPost("missing-text")


def post_from_v2(payload: dict[str, Any]) -> Post:
    """Twitter API v2 tweet lookup/stream object: ``data`` plus ``includes`` (users,
    places, referenced tweets)."""
    data = _object(payload, "data")
    if data is None:
        raise InvalidPost("invalid-field", "data")
    includes = _object(payload, "includes") or {}
    users = {str(u.get("id")): u for u in _objects(includes, "users")}
    places = {str(p.get("id")): p for p in _objects(includes, "places")}
    tweets = {str(t.get("id")): t for t in _objects(includes, "tweets")}
    content = data
    for ref in _objects(data, "referenced_tweets"):
        if ref.get("type") == "retweeted" and str(ref.get("id")) in tweets:
            content = tweets[str(ref["id"])]
    note = _object(content, "note_tweet")
    text = _str(note, "text") if note and note.get("text") else None
    if text is None:
        if content.get("text") is None:
            raise InvalidPost("missing-text")
        text = _str(content, "text")
    geo = _object(data, "geo") or {}
    user = users.get(str(data.get("author_id")), {})
    place = places.get(str(geo.get("place_id")))
    bbox = (_object(place, "geo") or {}).get("bbox") if place else None
    return Post(
        id=_id(data.get("id")),
        text=text,
        lang=_str(data, "lang"),
        created_at=_created_at(_str(data, "created_at")),
        user_id=_optional_id(data.get("author_id")),
        user_name=_str(user, "username"),
        user_location=_str(user, "location"),
        user_description=_str(user, "description"),
        source=_str(data, "source"),
        is_retweet=content is not data,
        coordinates=_point(_object(geo, "coordinates")),
        place=_place(place, _bbox_from_list(bbox)) if place else None,
    )
