"""The few-shot protocol: clean, deduplicate, split by user, draw k shots per location.

1. **Bots** are dropped by two documented rules: (a) job-ad hashtags (``#hiring``,
   ``#CareerArc``, ``#job``, ``#jobs``); (b) templated posters: texts are reduced to a
   *template* (lower-cased, URLs, mentions and numbers removed, first 40 characters); a
   user with >= 10 posts whose most common template covers >= 50% of them is a bot (weather
   stations, check-in feeds), and without user ids any template seen >= 10 times is.
2. **Duplicates**: posts with the same normalized text (URLs and mentions removed,
   lower-cased) keep only the first, so no text appears on both sides of a split.
3. **Splits by user**: every post of a user goes to the same split (train pool, dev or
   test); a dataset without user ids splits by post. Users are assigned in a seeded random
   order to the split that is furthest below its target share for the user's main location.
4. **Locations**: those with >= ``min_posts`` posts in each of train pool, dev and test
   requirements (see ``FewShotConfig``), capped to the ``max_locations`` most frequent.
5. **Shots**: for k in ``shots``, the first k posts of a seeded per-location order of the
   train pool, round-robin over users (so 16 shots are not one user's 16 posts); the k-shot
   sets are nested (the 1-shot post is in the 2-shot set ...). ``"all"`` is the whole
   train pool of each kept location (an upper reference: what every label of the
   training users teaches); the locations kept are those the numeric shot counts allow,
   so ``(1, 16, "all")`` keeps the same places as ``(1, 16)``.

The **catalogue protocol** (``protocol="catalogue"``, ``make_catalogue_split``) keeps steps
1, 2 and 5 but not the location filter: every place of the catalogue is a candidate, users
are split into train pool / dev / test by their share of all posts, the test set is every
post of the test users (gold may be a place without a single training label), dev is up to
``max_dev_posts`` posts of the dev users, and ``k`` caps the training posts per place
(``"all"`` = no cap: every label of the training users).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from trainer.data.readers import Record

JOB_TAGS = re.compile(r"#(hiring|careerarc|jobs?)\b", re.IGNORECASE)
_URL_MENTION = re.compile(r"https?://\S+|@\w+")
_NUMBER = re.compile(r"\d+([.,:]\d+)*")
_SPACES = re.compile(r"\s+")


def normalized_text(text: str) -> str:
    return _SPACES.sub(" ", _URL_MENTION.sub(" ", text.casefold())).strip()


def template(text: str) -> str:
    return _SPACES.sub(" ", _NUMBER.sub("#", normalized_text(text))).strip()[:40]


def bot_reasons(
    records: Sequence[Record], min_posts: int = 10, share: float = 0.5
) -> list[str | None]:
    """Per record: ``"job-ad"``, ``"templated"`` or None, by the two rules in the module
    doc. A user's templates are judged over all their posts, labeled or not."""
    reasons: list[str | None] = [
        "job-ad" if JOB_TAGS.search(r.post.text) else None for r in records
    ]
    templates = [template(r.post.text) for r in records]
    by_user: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_user[r.post.user_id].append(i)
    for user, idx in by_user.items():
        if not user:  # no user ids: a template repeated >= min_posts times is a bot
            counts = Counter(templates[i] for i in idx)
            templated = [i for i in idx if counts[templates[i]] >= min_posts]
        elif len(idx) >= min_posts:
            _, top = Counter(templates[i] for i in idx).most_common(1)[0]
            templated = idx if top >= share * len(idx) else []
        else:
            templated = []
        for i in templated:
            reasons[i] = reasons[i] or "templated"
    return reasons


Shots = int | Literal["all"]  # training posts per place; "all" = no cap (the whole train pool)
Protocol = Literal["fewshot", "catalogue"]
DEFAULT_SHOTS: dict[Protocol, tuple[Shots, ...]] = {
    "fewshot": (1, 2, 4, 8, 16),
    "catalogue": (1, 4, 16, "all"),
}


def shot_order(k: Shots) -> float:
    """Sort key of a shot count ("all" after every number)."""
    return math.inf if k == "all" else float(k)


def places_need(shots: Sequence[Shots]) -> int:
    """Training posts a place needs for a few-shot split to keep it: the largest numeric
    shot count asked (1 when only "all" is)."""
    return max((k for k in shots if k != "all"), default=1)


def shot_label(k: Shots) -> str:
    return "all labels" if k == "all" else f"{k}-shot"


def bot_mask(records: Sequence[Record], min_posts: int = 10, share: float = 0.5):
    """(is_bot boolean array, Counter of reasons) over all records."""
    reasons = bot_reasons(records, min_posts, share)
    return np.array([r is not None for r in reasons], dtype=bool), Counter(r for r in reasons if r)


@dataclass(frozen=True)
class FewShotConfig:
    shots: tuple[Shots, ...] = DEFAULT_SHOTS["fewshot"]
    min_posts: int = 30  # per location, after cleaning
    max_locations: int | None = 50
    dev_share: float = 0.15
    test_share: float = 0.3
    max_test_per_location: int = 50
    max_dev_per_location: int = 10
    seed: int = 0
    protocol: Protocol = "fewshot"
    max_dev_posts: int = 500  # catalogue protocol: dev posts (a seeded sample of dev users')

    def __post_init__(self):
        if self.protocol not in ("fewshot", "catalogue"):
            raise ValueError(f"unknown protocol {self.protocol!r}: fewshot or catalogue")


@dataclass
class FewShotSplit:
    location_ids: list[int]  # catalogue location indices kept, most frequent first
    train_pool: dict[int, list[int]]  # location -> record indices (round-robin user order)
    dev: list[int]
    test: list[int]
    user_disjoint: bool
    report: Counter[str] = field(default_factory=Counter)

    def shots(self, k: Shots) -> list[int]:
        """Record indices of the k-shot training set (nested in k; "all": every post)."""
        cap = None if k == "all" else k
        return [i for loc in self.location_ids for i in self.train_pool.get(loc, [])[:cap]]


def make_split(
    records: Sequence[Record], labels: np.ndarray, config: FewShotConfig = FewShotConfig()
) -> FewShotSplit:
    """Apply steps 1-5 of the module doc to labeled records (labels -1 = unlabeled)."""
    if config.protocol != "fewshot":
        raise ValueError("make_split is the few-shot protocol; see make_catalogue_split")
    report: Counter[str] = Counter()
    keep = _clean(records, labels, report)
    user_disjoint = any(records[i].post.user_id for i in keep)
    counts = Counter(int(labels[i]) for i in keep)
    candidates = [loc for loc, n in counts.most_common() if n >= config.min_posts]
    kept = [i for i in keep if counts[int(labels[i])] >= config.min_posts]
    rng = random.Random(config.seed)
    # balanced per location: each user goes where their main location is furthest behind
    per_split = _split_users(records, labels, kept, config, rng, user_disjoint, by_location=True)
    max_k = places_need(config.shots)
    location_ids = [
        loc
        for loc in candidates
        if len(per_split["train"][loc]) >= max_k
        and per_split["test"][loc]
        and per_split["dev"][loc]
    ]
    report["dropped-locations:too-few-posts-per-split"] = len(candidates) - len(location_ids)
    location_ids = location_ids[: config.max_locations]

    train_pool = {loc: _round_robin(per_split["train"][loc], records, rng) for loc in location_ids}
    dev = [i for loc in location_ids for i in per_split["dev"][loc][: config.max_dev_per_location]]
    test = [
        i for loc in location_ids for i in per_split["test"][loc][: config.max_test_per_location]
    ]
    report["locations"] = len(location_ids)
    report["test_posts"] = len(test)
    report["dev_posts"] = len(dev)
    return FewShotSplit(location_ids, train_pool, dev, test, user_disjoint, report)


def make_catalogue_split(
    records: Sequence[Record],
    labels: np.ndarray,
    n_locations: int,
    config: FewShotConfig,
) -> FewShotSplit:
    """The catalogue protocol (module doc): every one of the ``n_locations`` catalogue
    places is a candidate; users split by their share of all posts."""
    report: Counter[str] = Counter()
    keep = _clean(records, labels, report)
    user_disjoint = any(records[i].post.user_id for i in keep)
    rng = random.Random(config.seed)
    per_split = _split_users(records, labels, keep, config, rng, user_disjoint, by_location=False)
    train_pool = {
        loc: _round_robin(posts, records, rng) for loc, posts in sorted(per_split["train"].items())
    }
    dev = [i for posts in per_split["dev"].values() for i in posts]
    rng.shuffle(dev)
    dev = sorted(dev[: config.max_dev_posts])
    test = sorted(i for posts in per_split["test"].values() for i in posts)
    report["locations"] = n_locations
    report["locations_with_training_posts"] = len(train_pool)
    report["training_posts"] = sum(len(p) for p in train_pool.values())
    report["test_posts"] = len(test)
    report["dev_posts"] = len(dev)
    return FewShotSplit(list(range(n_locations)), train_pool, dev, test, user_disjoint, report)


def _clean(records: Sequence[Record], labels: np.ndarray, report: Counter[str]) -> list[int]:
    """Steps 1 and 2: the labeled records that are neither bots nor repeated texts."""
    bots = bot_reasons(records)
    seen: set[str] = set()
    keep: list[int] = []
    for i, r in enumerate(records):
        if labels[i] < 0:
            report["dropped:unlabeled"] += 1
        elif bots[i]:
            report[f"dropped:bot-{bots[i]}"] += 1
        elif (norm := normalized_text(r.post.text)) in seen or not norm:
            report["dropped:duplicate-text"] += 1
        else:
            seen.add(norm)
            keep.append(i)
    return keep


def _split_users(
    records: Sequence[Record],
    labels: np.ndarray,
    keep: list[int],
    config: FewShotConfig,
    rng: random.Random,
    user_disjoint: bool,
    by_location: bool,
) -> dict[str, dict[int, list[int]]]:
    """Step 3: split -> location -> record indices. Users (posts, when ``user_disjoint`` is
    false: the data has no user ids) go in a seeded order to the split furthest below its
    target share: of their main location's posts (``by_location``) or of all posts."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in keep:
        groups[records[i].post.user_id if user_disjoint else f"post:{i}"].append(i)
    order = sorted(groups)
    rng.shuffle(order)
    shares = {
        "test": config.test_share,
        "dev": config.dev_share,
        "train": 1.0 - config.test_share - config.dev_share,
    }
    assigned: dict[int, Counter[str]] = defaultdict(Counter)
    split_of: dict[str, str] = {}
    for g in order:
        main = Counter(int(labels[i]) for i in groups[g]).most_common(1)[0][0]
        have = assigned[main if by_location else -1]
        total = sum(have.values()) + len(groups[g])
        split = max(shares, key=lambda s: shares[s] * total - have[s])
        split_of[g] = split
        for i in groups[g]:
            assigned[int(labels[i]) if by_location else -1][split] += 1
    per_split: dict[str, dict[int, list[int]]] = {s: defaultdict(list) for s in shares}
    for g in order:
        for i in groups[g]:
            per_split[split_of[g]][int(labels[i])].append(i)
    return per_split


def _round_robin(indices: list[int], records: Sequence[Record], rng: random.Random) -> list[int]:
    """Seeded order that takes one post per user in turn."""
    by_user: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        by_user[records[i].post.user_id or f"post:{i}"].append(i)
    users = sorted(by_user)
    rng.shuffle(users)
    for u in users:
        rng.shuffle(by_user[u])
    out: list[int] = []
    while any(by_user[u] for u in users):
        for u in users:
            if by_user[u]:
                out.append(by_user[u].pop())
    return out
