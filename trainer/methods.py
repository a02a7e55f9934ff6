"""Every method the benchmark compares, behind one signature: ``method(run) -> Predictions``.

A ``Run`` is one (split, shots, seed): the candidate locations, the k-shot training posts,
the dev posts (for early stopping or model selection) and the test posts. Every method
reads the same composed input strings (``TaskSplit.texts``: ``text`` or ``text+meta``).

Baselines:
    tfidf-lr          TF-IDF (word 1-2-grams + character 2-5-grams) + logistic regression,
                      C chosen on dev Acc@1 from {0.1, 1, 10, 100} (fitted in the training
                      posts' row space: the same solution, ``RowSpace``)
    gazetteer         a candidate's name (or a district merged into it) found as a whole
                      word: profile location first, then text, then bio; ties go to the
                      candidate whose state also appears, then the longest name, then the
                      most populous. No match = no answer
    zero-shot         frozen encoder, nearest location prompt (template-averaged)
    zero-shot+tfidf   zero-shot log-probabilities + λ x TF-IDF log-probabilities, λ (and
                      TF-IDF's C) chosen on dev: a cheap hybrid that ContrastGeo must beat
    prototype         frozen encoder, nearest centroid of (prompt + k support embeddings)
    finetune-softmax  the same encoder + a linear layer initialised from the location
                      prompts' embeddings (so step 0 is zero-shot), fine-tuned with
                      cross-entropy on the same step budget and dev selection as ContrastGeo
    carmen            Dredze et al. 2013 on the tweet with its place and coordinates hidden;
                      a city answer maps to the nearest candidate within the labeling radius,
                      anything else is no answer

ContrastGeo (``contrastgeo``) and its ablations are ``contrastgeo-<variant>`` (``VARIANTS``);
``contrastgeo-prototypes`` serves the same trained model with labeled posts mixed into its
places' prototypes.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

from model.config import ContrastGeoConfig, PromptConfig
from model.contrastgeo import ContrastGeo, Ranking
from model.prototypes import mix_prototypes
from trainer.data.catalogue import fold, haversine_km
from trainer.data.fewshot import Shots
from trainer.encoding_memo import EncodingMemo
from trainer.task import TaskSplit
from trainer.train import FitResult, TrainConfig, bucket_lengths, fit, train_loop

NO_ANSWER = -1
RADIUS_KM = 25.0  # carmen answers snap to a candidate this close (the labeling radius)
TOP = 5  # ranked columns kept per post (Acc@5)


@dataclass
class Predictions:
    ranked: np.ndarray  # (n, <=TOP) candidate indices, best first; NO_ANSWER = abstain
    confidence: np.ndarray  # (n,) higher = more confident
    train_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # what the run chose (step, α, w ...)


@dataclass
class Run:
    split: TaskSplit
    shots: Shots
    seed: int
    model_config: ContrastGeoConfig  # base config (checkpoint, fusion, ...) for the task
    train_config: TrainConfig
    frozen: FrozenEncoder  # shared frozen-encoder embeddings and encoding memo
    shared: dict[str, Any] = field(default_factory=dict)  # reused by the (seed, k)'s methods

    @property
    def train(self) -> list[int]:
        return self.split.shots(self.shots)


def from_scores(scores: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(ranked top columns, confidence = softmax probability of the top one)."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    probs = scores.softmax(dim=1)
    top = probs.topk(min(TOP, probs.shape[1]), dim=1)
    return top.indices.numpy(), top.values[:, 0].numpy()


# ------------------------------------------------------------------- frozen encoder
@dataclass
class FrozenEncoder:
    """The untrained model's embeddings: posts cached by record index, locations in the
    benchmark's ``EncodingMemo`` (shared with training, whose step 0 is this model), so
    zero-shot and prototype cost one encoding pass per benchmark."""

    config: ContrastGeoConfig
    memo: EncodingMemo = field(default_factory=EncodingMemo)
    _model: ContrastGeo | None = None
    _posts: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def model(self) -> ContrastGeo:
        if self._model is None:
            self._model = ContrastGeo.from_config(self.config).eval()
        return self._model

    def posts(self, split: TaskSplit, records: Sequence[int]) -> torch.Tensor:
        missing = [i for i in dict.fromkeys(records) if i not in self._posts]
        if missing:
            emb = self.model.embed_posts(split.texts(missing))
            self._posts.update(zip(missing, emb, strict=True))
        return torch.stack([self._posts[i] for i in records])

    def locations(self, split: TaskSplit) -> torch.Tensor:
        return self.memo.embeddings(self.model, split.locations)


def zero_shot_scores(run: Run, records: Sequence[int]) -> torch.Tensor:
    """The frozen encoder's scaled cosines of the records' posts to every location prompt."""
    scale = float(run.frozen.model.inverse_temperature().detach())
    return scale * run.frozen.posts(run.split, records) @ run.frozen.locations(run.split).T


def zero_shot(run: Run) -> Predictions:
    return Predictions(*from_scores(zero_shot_scores(run, run.split.test)))


def prototype(run: Run) -> Predictions:
    """Nearest centroid; a centroid is the normalized mean of the location's prompt
    embedding and its k support embeddings."""
    start = time.perf_counter()
    locs = run.frozen.locations(run.split).clone()
    train = run.train
    support = run.frozen.posts(run.split, train)
    gold = torch.as_tensor(run.split.gold(train))
    sums = locs.index_add(0, gold, support)
    counts = 1 + torch.bincount(gold, minlength=len(locs)).float()
    centroids = torch.nn.functional.normalize(sums / counts[:, None], dim=1)
    seconds = time.perf_counter() - start
    posts = run.frozen.posts(run.split, run.split.test)
    scale = float(run.frozen.model.inverse_temperature().detach())
    return Predictions(*from_scores(scale * posts @ centroids.T), seconds)


# --------------------------------------------------------------------------- TF-IDF
def _tfidf_logprobs(run: Run) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    """TF-IDF (word 1-2 + char 2-5 grams) + logistic regression, C picked on dev Acc@1:
    (dev, test) log-probabilities over every candidate, training seconds, the chosen C.
    Fitted once per (seed, k): ``tfidf-lr`` and ``zero-shot+tfidf`` share it."""
    if "tfidf" not in run.shared:
        run.shared["tfidf"] = _fit_tfidf(run)
    return run.shared["tfidf"]


def _fit_tfidf(run: Run) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union

    start = time.perf_counter()
    x_train, y_train = run.split.texts(run.train), run.split.gold(run.train)
    x_dev, y_dev = run.split.texts(run.split.dev), run.split.gold(run.split.dev)
    vectorizer = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    features = RowSpace()
    z_train = features.fit_transform(vectorizer.fit_transform(x_train))

    def transform(texts: list[str]) -> np.ndarray:
        return features.transform(vectorizer.transform(texts))

    z_dev = transform(x_dev)
    best, best_acc, best_c = None, -1.0, None
    for c in (0.1, 1.0, 10.0, 100.0):
        classifier = LogisticRegression(C=c, max_iter=2000)
        with warnings.catch_warnings():
            # at 1 shot every class has one sample: sklearn warns it "could be a regression"
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            classifier.fit(z_train, y_train)
        acc = float((classifier.predict(z_dev) == y_dev).mean())
        if acc > best_acc:
            best, best_acc, best_c = classifier, acc, c
    seconds = time.perf_counter() - start

    def logprobs(z: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(z), len(run.split.locations)))
        probs[:, best.classes_] = best.predict_proba(z)
        return np.log(probs + 1e-12)

    z_test = transform(run.split.texts(run.split.test))
    return logprobs(z_dev), logprobs(z_test), seconds, {"C": best_c}


class RowSpace:
    """Features → coordinates in the span of the training rows, for an L2-penalized linear
    model with fewer training posts (n) than features (TF-IDF has ~10^5).

    Such a model's optimal weights lie in that span (a component outside it changes no
    training score and only adds to the penalty), and the coordinates ``z = X V`` in an
    orthonormal basis ``V`` of it keep every training score and the penalty's norm: the
    same problem, with n weights per class instead of one per feature, and the same
    solution. L-BFGS from zero is also invariant to that rotation (only its stopping rule,
    the largest gradient component, is not): on the us-south catalogue split (2,929 posts,
    172,040 features, 214 places) it took the same iterations to the same probabilities
    (within 2e-13) at 1/20 of the time, each step handling an n × classes matrix instead
    of a features × classes one.
    ``V = Xᵀ U S⁻¹`` from the eigendecomposition ``X Xᵀ = U S² Uᵀ`` is never formed:
    ``z = X_new Xᵀ U S⁻¹``. With n ≥ features, or n above ``max_rows`` (the n × n
    decomposition costs O(n³)), features pass through unchanged."""

    def __init__(self, max_rows: int = 10_000, rcond: float = 1e-10):
        self.max_rows, self.rcond = max_rows, rcond

    def fit_transform(self, x):
        """Learn the span of ``x``'s rows; their coordinates in it."""
        self.rows, self.projection = x, None
        n, d = x.shape
        if n >= d or n > self.max_rows:
            return x
        gram = _dense(x @ x.T)
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        keep = eigenvalues > self.rcond * max(eigenvalues.max(), 0.0)
        self.projection = eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])
        return gram @ self.projection

    def transform(self, x):
        """Coordinates of new rows in the training rows' span."""
        if self.projection is None:
            return x
        return _dense(x @ self.rows.T) @ self.projection


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def tfidf_lr(run: Run) -> Predictions:
    _, test, seconds, info = _tfidf_logprobs(run)
    return Predictions(*from_scores(test), seconds, info)


HYBRID_WEIGHTS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


def zero_shot_tfidf(run: Run) -> Predictions:
    """log p_zero-shot + λ log p_TF-IDF, λ from ``HYBRID_WEIGHTS`` by dev Acc@1 (ties: the
    smaller λ)."""
    dev_tfidf, test_tfidf, seconds, info = _tfidf_logprobs(run)
    split = run.split

    def zero_shot_logprobs(records: Sequence[int]) -> np.ndarray:
        return torch.log_softmax(zero_shot_scores(run, records), dim=1).numpy()

    dev_zs, gold_dev = zero_shot_logprobs(split.dev), split.gold(split.dev)
    accuracy = {
        w: float(((dev_zs + w * dev_tfidf).argmax(1) == gold_dev).mean()) for w in HYBRID_WEIGHTS
    }
    weight = max(HYBRID_WEIGHTS, key=lambda w: (accuracy[w], -w))
    scores = zero_shot_logprobs(split.test) + weight * test_tfidf
    return Predictions(*from_scores(scores), seconds, {**info, "tfidf_weight": weight})


# ------------------------------------------------------------------------ gazetteer
def gazetteer(run: Run) -> Predictions:
    split = run.split
    catalogue = split.task.catalogue
    candidate = {loc: i for i, loc in enumerate(split.partition.location_ids)}
    names: dict[str, list[int]] = {}
    for place, loc in enumerate(catalogue.place_to_location):
        name = catalogue.place_names[place]
        if int(loc) in candidate and len(name) >= 3:
            names.setdefault(name, []).append(candidate[int(loc)])
    for i, loc in enumerate(split.locations):
        names.setdefault(fold(loc.name), []).append(i)
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b"
    )
    admins = [fold(loc.admin) for loc in split.locations]
    population_rank = {c: r for r, c in enumerate(sorted(candidate))}  # catalogue order

    fields = [
        f
        for f in ("user_location", "text", "user_description")
        if f in split.task.prompts.post_fields
    ]
    ranked = np.full((len(split.test), 1), NO_ANSWER)
    confidence = np.zeros(len(split.test))
    for row, record in enumerate(split.test):
        post = split.task.records[record].post
        for rank, name in enumerate(fields):
            text = fold(getattr(post, name) or "")
            found = {c for m in pattern.finditer(text) for c in names[m.group(1)]}
            if not found:
                continue
            ranked[row, 0] = min(
                found,
                key=lambda c: (
                    not (admins[c] and admins[c] in text),
                    -len(split.locations[c].name),
                    population_rank[split.partition.location_ids[c]],
                ),
            )
            confidence[row] = 1.0 / (1 + rank)
            break
    return Predictions(ranked, confidence)


# --------------------------------------------------------------------------- carmen
@cache
def _carmen_resolver():
    import warnings

    import carmen

    resolver = carmen.get_resolver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolver.load_locations()
    return resolver


def carmen_baseline(run: Run) -> Predictions:
    split = run.split
    resolver = _carmen_resolver()
    meta = "user_location" in split.task.prompts.post_fields
    ranked = np.full((len(split.test), 1), NO_ANSWER)
    for row, record in enumerate(split.test):
        post = split.task.records[record].post
        user = (
            {"location": post.user_location, "description": post.user_description} if meta else {}
        )
        tweet = {"text": post.text, "user": user}  # place and coordinates hidden
        found = resolver.resolve_tweet(tweet)
        if found is None or not found[1].city:
            continue
        loc = found[1]
        d = haversine_km(loc.latitude, loc.longitude, split.lat, split.lon)
        if d.min() <= RADIUS_KM:
            ranked[row, 0] = int(d.argmin())
    return Predictions(ranked, (ranked[:, 0] >= 0).astype(float))


# ------------------------------------------------------------------ fine-tuned softmax
class SoftmaxClassifier(nn.Module):
    """The ContrastGeo post encoder + a linear layer over the normalized embedding, scaled
    like the TLC logits. Its weights start as the location prompts' embeddings (bias 0), so
    before training it ranks exactly as zero-shot does, the start ContrastGeo's TLC has."""

    def __init__(self, model: ContrastGeo, locations: Sequence[Any]):
        super().__init__()
        self.model = model
        self.head = nn.Linear(model.post_encoder.embedding_dim, len(locations))
        with torch.no_grad():
            self.head.weight.copy_(model.embed_locations(locations))
            self.head.bias.zero_()

    def forward(self, posts: Sequence[Any]) -> torch.Tensor:
        return self.model.inverse_temperature().detach() * self.head(
            self.model.encode_posts(posts).embeddings
        )


def finetune_softmax(run: Run) -> Predictions:
    from trainer.train import reciprocal_ranks

    split = run.split
    model = ContrastGeo.from_config(run.model_config)
    classifier = SoftmaxClassifier(model, split.locations)
    train = split.examples(run.train)
    dev = split.examples(split.dev)
    gold_dev = torch.tensor([ex.location for ex in dev])

    def step(batch, generator):
        logits = classifier([ex.post for ex in batch])
        loss = nn.functional.cross_entropy(logits, torch.tensor([ex.location for ex in batch]))
        return loss, {"loss": loss.item()}

    def logits_of(records: Sequence[Any]) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([classifier(records[s : s + 64]) for s in range(0, len(records), 64)])

    def score() -> float:  # the same dev criterion as ContrastGeo's: MRR of the gold location
        return float(reciprocal_ranks(logits_of([ex.post for ex in dev]), gold_dev).mean())

    lengths = bucket_lengths(model, train, run.train_config)
    result = train_loop(classifier, train, run.train_config, step, score, lengths)
    posts = [split.task.records[i].post for i in split.test]
    info = {"best_step": result.best_step, "dev_curve": result.history}
    return Predictions(*from_scores(logits_of(posts)), result.seconds, info)


# ----------------------------------------------------------------------- ContrastGeo
# variant -> (overrides of the model config as nested dicts, overrides of TrainConfig)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "": ({}, {}),
    # the matching head: not trained and not used; trained as an auxiliary loss only (the
    # answer is TLC's, as in FewUser); trained and used with w fixed at 0.5 (the paper's)
    "no-tlm": ({"rerank": {"tlm_weight": 0.0}}, {"tlm_weight": 0.0, "rerank_weights": None}),
    "tlm-aux": ({"rerank": {"tlm_weight": 0.0}}, {"rerank_weights": None}),
    "w0.5": ({"rerank": {"tlm_weight": 0.5}}, {"rerank_weights": None}),
    # the recipe's parts: no interpolation toward the pre-trained weights
    "no-interp": ({}, {"interpolation": (1.0,)}),
    # temperature: fixed at 0.03 (FewUser), learnable from 0.07 (ALBEF)
    "t0.03-fixed": ({"temperature": 0.03, "learnable_temperature": False}, {}),
    "t0.07-learned": ({"temperature": 0.07, "learnable_temperature": True}, {}),
    "random-neg": ({}, {"mining": "random"}),
    "cross-attention": ({"fusion": {"strategy": "cross-attention"}}, {}),
    "token": ({"fusion": {"strategy": "token"}}, {}),
    "cls-pooling": ({"encoder": {"pooling": "cls"}}, {}),
    "one-template": ({"prompts": {"location_templates": ["a post from {place}"]}}, {}),
    # a fourth prompt as profiles write places ("Ames, IA")
    "profile-prompts": (
        {"prompts": {"location_templates": [*PromptConfig().location_templates, "{short}"]}},
        {},
    ),
    "freeze3": ({}, {"freeze_layers": 3}),
    "loc-refresh4": ({}, {"location_refresh": 4}),
    # the location encoder: a frozen pre-trained copy with the post side trained (LiT), or
    # one encoder for both, trained (the default picks by the share of labeled candidates)
    "locked-locations": ({}, {"location_encoder": "locked"}),
    "trained-locations": ({}, {"location_encoder": "trained"}),
    "bucket8": ({}, {"bucket": 8}),
    "bucket8-refresh4": ({}, {"bucket": 8, "location_refresh": 4}),
    # half the step budget (the warmup and decay follow it)
    "steps50": ({}, {"steps": 50}),
    # the language model's peak learning rate (the default is 5e-5), 2x and 4x
    "lr1e-4": ({}, {"lr": 1e-4}),
    "lr2e-4": ({}, {"lr": 2e-4}),
    # the three speed options together
    "fast": ({}, {"freeze_layers": 3, "location_refresh": 4, "bucket": 8}),
    # the long tail: places drawn in proportion to the square root of their label count
    "sqrt-sampling": ({}, {"sampling": "sqrt"}),
}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return out


def variant_configs(
    variant: str, model_config: ContrastGeoConfig, train_config: TrainConfig
) -> tuple[ContrastGeoConfig, TrainConfig]:
    """The model and training configs of ``contrastgeo-<variant>``: the run's, with the
    variant's overrides, both validated (a misspelled field fails here, instead of the
    variant silently training the default)."""
    model_override, train_override = VARIANTS[variant]
    return (
        ContrastGeoConfig.model_validate(_merge(model_config.model_dump(), model_override)),
        TrainConfig.model_validate(_merge(train_config.model_dump(), train_override)),
    )


def trained_contrastgeo(run: Run, variant: str = "") -> tuple[ContrastGeo, FitResult]:
    """ContrastGeo (or a variant) fitted on the run's shots with dev selection, once per
    (seed, k): the methods that serve the same trained model differently reuse it."""
    key = f"contrastgeo:{variant}"
    if key not in run.shared:
        config, train_config = variant_configs(variant, run.model_config, run.train_config)
        model = ContrastGeo.from_config(config)
        split = run.split
        result = fit(
            model,
            split.examples(run.train),
            split.locations,
            train_config,
            dev=split.examples(split.dev),
            memo=run.frozen.memo,
        )
        run.shared[key] = (model, result)
    return run.shared[key]


def _contrastgeo_predictions(
    model: ContrastGeo, result: FitResult, ranking: Ranking, **info: Any
) -> Predictions:
    confidence = ranking.scores[:, 0].exp().numpy()
    info = {
        "best_step": result.best_step,
        "alpha": result.alpha,
        "rerank_weight": model.config.rerank.tlm_weight,
        "temperature": float(1 / model.inverse_temperature()),
        **info,
        "dev_curve": result.history,
    }
    return Predictions(ranking.indices[:, :TOP].numpy(), confidence, result.seconds, info)


def contrastgeo_variant(variant: str) -> Callable[[Run], Predictions]:
    def method(run: Run) -> Predictions:
        model, result = trained_contrastgeo(run, variant)
        split = run.split
        ranking = model.predict(
            [split.task.records[i].post for i in split.test],
            split.locations,
            encoded_locations=run.frozen.memo.encoded(model, split.locations),
        )
        return _contrastgeo_predictions(model, result, ranking)

    return method


SUPPORT_WEIGHTS = (0.0, 0.1, 0.3, 1.0)  # weight of one labeled post against the prompt


def contrastgeo_prototypes(run: Run) -> Predictions:
    """The trained ContrastGeo served with each place's prototype mixed with its training
    posts' embeddings (``model.prototypes.mix_prototypes``), the posts' weight picked on
    the dev two-stage MRR from ``SUPPORT_WEIGHTS`` (ties: the smaller; 0 = ``contrastgeo``
    itself). Decides whether the index should mix labeled posts into prototypes."""
    from trainer.train import ranking_mrr

    model, result = trained_contrastgeo(run)
    split = run.split
    encoded = run.frozen.memo.encoded(model, split.locations)
    train = split.examples(run.train)
    gold = torch.tensor([ex.location for ex in train])
    sums = torch.zeros_like(encoded.embeddings).index_add_(
        0, gold, model.embed_posts([ex.post for ex in train])
    )

    def ranking(records: Sequence[int], weight: float) -> Ranking:
        mixed = mix_prototypes(encoded.embeddings.numpy(), sums.numpy(), weight)
        locations = dataclasses.replace(encoded, embeddings=torch.from_numpy(mixed))
        posts = [split.task.records[i].post for i in records]
        return model.predict(posts, split.locations, encoded_locations=locations)

    dev = split.examples(split.dev)
    score = {w: ranking_mrr(ranking(split.dev, w), dev) for w in SUPPORT_WEIGHTS}
    weight = max(SUPPORT_WEIGHTS, key=lambda w: (score[w], -w))
    return _contrastgeo_predictions(
        model,
        result,
        ranking(split.test, weight),
        support_weight=weight,
        support_dev_mrr={str(w): s for w, s in score.items()},
    )


METHODS: dict[str, Callable[[Run], Predictions]] = {
    "contrastgeo": contrastgeo_variant(""),
    **{f"contrastgeo-{v}": contrastgeo_variant(v) for v in VARIANTS if v},
    "contrastgeo-prototypes": contrastgeo_prototypes,
    "tfidf-lr": tfidf_lr,
    "gazetteer": gazetteer,
    "zero-shot": zero_shot,
    "zero-shot+tfidf": zero_shot_tfidf,
    "prototype": prototype,
    "finetune-softmax": finetune_softmax,
    "carmen": carmen_baseline,
}
BASELINES = (
    "tfidf-lr",
    "gazetteer",
    "zero-shot",
    "zero-shot+tfidf",
    "prototype",
    "finetune-softmax",
    "carmen",
)
CATALOGUE_BASELINES = ("zero-shot", "carmen", "gazetteer", "tfidf-lr", "zero-shot+tfidf")
SHOT_FREE = {"gazetteer", "zero-shot", "carmen"}  # same answer at every shot count
ENCODER_FREE = {"gazetteer", "carmen"}  # read no language model: same answer with any encoder
