"""The normalized input post: what every payload format (Twitter v1.1, v2, minimal) becomes.

Field names match ``model.prompts.PostFields``, so a ``Post`` is passed to the model as is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Place(BaseModel):
    """A Twitter place attached to a post (a city, a POI, a state ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    name: str
    full_name: str = ""
    place_type: str = ""
    country_code: str = ""
    # (min_lon, min_lat, max_lon, max_lat) of the place's bounding box
    bbox: tuple[float, float, float, float] | None = None

    @property
    def centroid(self) -> tuple[float, float] | None:
        """(lat, lon) of the bounding-box centre."""
        if self.bbox is None:
            return None
        min_lon, min_lat, max_lon, max_lat = self.bbox
        return (min_lat + max_lat) / 2, (min_lon + max_lon) / 2


class Coordinates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Post(BaseModel):
    """A social media post with the metadata the geolocation model reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(min_length=1)
    text: str
    lang: str = ""
    created_at: datetime | None = None
    user_id: str = ""
    user_name: str = ""
    user_location: str = ""
    user_description: str = ""
    time_zone: str = ""
    source: str = ""
    is_retweet: bool = False
    coordinates: Coordinates | None = None
    place: Place | None = None
