"""The normalized input post: what every payload format (Twitter v1.1, v2, minimal) becomes.

Field names match ``model.prompts.PostFields``, so a ``Post`` is passed to the model as is.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
# JSON can spell half of a UTF-16 surrogate pair ("\\ud800"); such a lone surrogate is no
# character and cannot be encoded again, so it becomes U+FFFD (the post is kept)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# Bounds on what one post can carry, so that no input makes an event too large to publish
# or slow to build. Ids (which become Kafka keys) longer than ID_MAX_CHARS are refused; the
# free-text fields are cut to these lengths (Twitter's own limits are far below them:
# location 30, description 160, screen name 15); the post text is bounded by the worker's
# ``max_text_chars`` (longer posts are dead-lettered).
ID_MAX_CHARS = 64
FREE_TEXT_MAX_CHARS = {
    "name": 200,  # user name, place name
    "location": 200,
    "description": 1000,
    "full_name": 300,
    "short": 32,  # language, place type, country code, time zone
    "source": 200,
}


def _cut(limit: int):
    return AfterValidator(lambda value: value[:limit])


Id = Annotated[str, Field(max_length=ID_MAX_CHARS)]
Name = Annotated[str, _cut(FREE_TEXT_MAX_CHARS["name"])]
Short = Annotated[str, _cut(FREE_TEXT_MAX_CHARS["short"])]


def _repair_text(value: Any) -> Any:
    if isinstance(value, str) and not value.isascii():
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


class _Normalized(BaseModel):
    """Frozen, no extra fields, every string encodable as UTF-8."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        return _repair_text(value)


class Place(_Normalized):
    """A Twitter place attached to a post (a city, a POI, a state ...)."""

    id: Id = ""
    name: Name
    full_name: Annotated[str, _cut(FREE_TEXT_MAX_CHARS["full_name"])] = ""
    place_type: Short = ""
    country_code: Short = ""
    # (min_lon, min_lat, max_lon, max_lat) of the place's bounding box
    bbox: tuple[float, float, float, float] | None = None

    @field_validator("bbox")
    @classmethod
    def _on_the_globe(cls, bbox):
        if bbox is None:
            return None
        min_lon, min_lat, max_lon, max_lat = bbox
        if not all(math.isfinite(x) for x in bbox):
            raise ValueError(f"bounding box {bbox} is not finite")
        # west > east is a box across the antimeridian (Fiji, Chukotka)
        lons_ok = -180 <= min_lon <= 180 and -180 <= max_lon <= 180
        if not (lons_ok and -90 <= min_lat <= max_lat <= 90):
            raise ValueError(f"bounding box {bbox} is not (west, south, east, north) on the globe")
        return bbox

    @property
    def centroid(self) -> tuple[float, float] | None:
        """(lat, lon) of the bounding-box centre."""
        if self.bbox is None:
            return None
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if min_lon > max_lon:  # across the antimeridian
            max_lon += 360
        lon = (min_lon + max_lon) / 2
        return (min_lat + max_lat) / 2, lon - 360 if lon > 180 else lon


class Coordinates(_Normalized):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Post(_Normalized):
    """A social media post with the metadata the geolocation model reads."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Id = Field(min_length=1)
    text: str
    lang: Short = ""
    created_at: datetime | None = None
    user_id: Id = ""
    user_name: Name = ""
    user_location: Annotated[str, _cut(FREE_TEXT_MAX_CHARS["location"])] = ""
    user_description: Annotated[str, _cut(FREE_TEXT_MAX_CHARS["description"])] = ""
    time_zone: Short = ""
    source: Annotated[str, _cut(FREE_TEXT_MAX_CHARS["source"])] = ""
    is_retweet: bool = False
    coordinates: Coordinates | None = None
    place: Place | None = None
