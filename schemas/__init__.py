"""Event and payload schemas (pydantic v2, versioned by ``schema_version``)."""

from schemas.posts import SCHEMA_VERSION, Coordinates, Place, Post
from schemas.twitter import ControlMessage, InvalidPost, parse_post

__all__ = [
    "SCHEMA_VERSION",
    "ControlMessage",
    "Coordinates",
    "InvalidPost",
    "Place",
    "Post",
    "parse_post",
]
