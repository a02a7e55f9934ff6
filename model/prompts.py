"""Text the encoder reads: location prompts and composed posts.

A location becomes several prompts ("Memphis, Tennessee, US", "a post from Memphis,
Tennessee, US", "Memphis"); the model averages their embeddings. A post becomes its text plus
metadata (profile location, description, ...) in a configured order, as in the paper: on real
tweets the text alone rarely says where it was written, the profile often does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import ContrastGeoConfig, PromptConfig


@dataclass(frozen=True)
class Location:
    """A candidate location: a named place with coordinates."""

    id: str
    name: str
    admin: str = ""
    country: str = ""
    lat: float = 0.0
    lon: float = 0.0
    admin_code: str = ""  # admin-1 code: "TN" in the US (GeoNames' "07" elsewhere)


def save_locations(path: str | Path, locations: list[Location]) -> None:
    """One JSON object per line; the candidate list that goes with a trained model."""
    lines = (json.dumps(dataclasses.asdict(loc), ensure_ascii=False) for loc in locations)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_locations(text: str) -> list[Location]:
    return [Location(**json.loads(line)) for line in text.splitlines() if line.strip()]


def load_locations(path: str | Path) -> list[Location]:
    return parse_locations(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PostFields:
    """The parts of a post the post template can use. Any object with these attribute
    names (e.g. the service's ``schemas.Post``) can be passed where a post is expected."""

    text: str
    user_location: str = ""
    user_description: str = ""
    user_name: str = ""
    source: str = ""
    created_at: str = ""
    time_zone: str = ""
    lang: str = ""


FIELD_LABELS: dict[str, str] = {
    "user_location": "location",
    "user_description": "bio",
    "user_name": "user",
    "source": "source",
    "created_at": "time",
    "time_zone": "timezone",
    "lang": "lang",
}

_SPACES = re.compile(r"\s+")
_DANGLING_COMMAS = re.compile(r"\s*,(\s*,)+")


def _comma_joined(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def location_texts(location: Location, config: PromptConfig) -> list[str]:
    """All prompts for one location, the primary one first. Empty fields vanish cleanly:
    "{name}, {admin}, {country}" with no admin gives "Ghent, BE", not "Ghent, , BE"."""
    code = location.admin_code
    short_code = code if len(code) == 2 and code.isalpha() else ""
    fields = {
        "name": location.name,
        "admin": location.admin,
        "country": location.country,
        "place": _comma_joined(location.name, location.admin, location.country),
        "short": _comma_joined(location.name, short_code),
    }
    texts = []
    for template in config.location_templates:
        text = _DANGLING_COMMAS.sub(",", template.format(**fields))
        texts.append(_SPACES.sub(" ", text).strip(" ,"))
    return texts


def template_major_prompts(locations: Sequence[Location], config: PromptConfig) -> list[str]:
    """Every location's prompts flattened template-major: the first template's prompt of
    every location, then the second's, ... (``t * n`` texts). Encoders embed them in one
    batch and average ``embeddings.reshape(t, n, d)`` over the templates."""
    prompts = [location_texts(loc, config) for loc in locations]
    return [p[i] for i in range(len(config.location_templates)) for p in prompts]


def normalize_spaces(value: Any) -> str:
    """``value`` as text with every run of whitespace one space, none at the ends."""
    return _SPACES.sub(" ", str(value)).strip()


def post_text(post: Any, config: PromptConfig) -> str:
    """Compose the encoder input for one post: a ``str`` (text only), ``PostFields``, or any
    object with those attributes. Whitespace is collapsed so that newlines in bios do not
    waste tokens."""
    if isinstance(post, str):
        return normalize_spaces(post)
    parts = []
    for field in config.post_fields:
        value = getattr(post, field, None)
        if value is None:
            continue
        value = normalize_spaces(value)
        if not value:
            continue
        parts.append(value if field == "text" else f"{FIELD_LABELS[field]}: {value}")
    return config.post_separator.join(parts)


def post_inputs(posts: Sequence[Any], config: ContrastGeoConfig) -> list[str]:
    """What the encoder reads for each post: the encoder's post prefix, then the post as
    the prompts compose it. Training and the workers both call this."""
    prefix = config.encoder.post_prefix
    return [prefix + post_text(p, config.prompts) for p in posts]


def location_inputs(locations: Sequence[Location], config: ContrastGeoConfig) -> list[str]:
    """``template_major_prompts`` with the encoder's location prefix on each prompt."""
    prefix = config.encoder.location_prefix
    return [prefix + t for t in template_major_prompts(locations, config.prompts)]
