"""Few-shot training of a ContrastGeo model: loss = w_tlc * TLC + w_tlm * TLM.

One loop, a few helpers, nanoGPT style. Each step encodes the batch's posts and all
candidate locations, computes TLC against all of them, draws hard negatives from the
detached TLC logits and trains the matching head on the gold pair plus those negatives.

The recipe that makes a few labels pay (``fit`` with dev posts):

1. **A step budget** (``steps``), not epochs: at 1 shot on 30 places an epoch is one step,
   so epoch budgets gave 5 to 75 steps depending on the shot count. Batches cycle through
   seeded shuffles of the training set.
2. **Model selection on a continuous dev criterion**: every ``eval_every`` steps, *and at
   step 0* (the untrained model is a candidate, so fine-tuning that only hurts falls back
   to it), the dev posts' mean reciprocal rank of their gold location by TLC; early stop
   after ``patience`` evaluations without a gain; the best weights are restored.
3. **Weight-space interpolation toward the pre-trained model** (WiSE-FT):
   θ = (1 − α) θ₀ + α θ_ft for the pre-trained parameters (the language model and the
   temperature; the new modules have no pre-trained value to return to), α picked on dev
   from ``interpolation``. The result is one model: export and serving do not change.
4. **The rerank weight decided by data**: w of ``(1 − w) log p_TLC + w log p_TLM`` picked
   on dev from ``rerank_weights`` (0 included: the matching head must earn its place) and
   written into the model's config, so the exported model serves with it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from model.contrastgeo import ContrastGeo, Ranking, eval_mode, rerank
from model.encoders import Encoded
from model.losses import match_labels, positive_mask, tlc_loss, tlm_loss
from model.mining import MiningMode, sample_negatives
from model.pretrained import named_encoder
from model.prompts import Location
from trainer.encoding_memo import EncodingMemo

log = structlog.get_logger(__name__)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(100, ge=1, description="Optimizer steps (whatever the shot count).")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0, description="Learning rate of the language model.")
    head_lr: float = Field(1e-3, gt=0, description="Learning rate of fusion and head.")
    temperature_lr: float = Field(
        1e-3, gt=0, description="Learning rate of the TLC temperature (when learnable)."
    )
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    tlc_weight: float = Field(1.0, ge=0)
    tlm_weight: float = Field(1.0, ge=0)
    negatives: int = Field(3, ge=0, description="Mined negatives per post for TLM.")
    mining: MiningMode = "hard"
    symmetric_tlc: bool = False
    freeze_layers: int = Field(0, ge=0, description="Freeze embeddings + the lowest N layers.")
    word_embeddings: Literal["auto", "frozen", "trained"] = Field(
        "auto",
        description="The language model's word-embedding table: auto = as the named encoder "
        "says (frozen for e5-small's 250k-token table, trained otherwise).",
    )
    eval_every: int = Field(25, ge=1, description="Steps between dev evaluations.")
    patience: int = Field(3, ge=1, description="Dev evaluations without a gain before stop.")
    interpolation: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0),
        description="WiSE-FT α candidates (dev picks; (1.0,) = no interpolation).",
    )
    rerank_weights: tuple[float, ...] | None = Field(
        (0.0, 0.25, 0.5),
        description="Rerank weight w candidates (dev picks); None keeps the model's own.",
    )
    grad_clip: float = Field(1.0, gt=0)
    location_refresh: int = Field(
        1, ge=1, description="Re-encode locations with gradients every N steps (1 = always)."
    )
    location_encoder: Literal["auto", "locked", "trained"] = Field(
        "auto",
        description="locked: the locations keep a frozen copy of the encoder and only the "
        "post side is trained (LiT): the candidates are encoded once, a step costs its posts "
        "only, and places without labels keep the embeddings the labeled ones are compared "
        "with; the model is saved with two encoders. trained: one encoder for both, trained "
        "(the paper's). auto: locked when fewer than half of the candidates have a training "
        "label (a catalogue), trained otherwise (every candidate labeled, as among the "
        "30-city protocol's places); measured both ways in docs/experiments.md.",
    )
    bank_above: int = Field(
        256,
        ge=0,
        description="With more candidates than this, TLC runs against a bank of location "
        "embeddings (LocationBank) instead of re-encoding all of them every step.",
    )
    bank_refresh: int = Field(25, ge=1, description="Steps between re-encodings of the bank.")
    bank_negatives: int = Field(
        8, ge=1, description="Hardest bank negatives per post re-encoded with gradients."
    )
    bucket: int = Field(
        0, ge=0, description="Sort windows of this many batches by length (0 = off)."
    )
    sampling: Literal["posts", "sqrt"] = Field(
        "posts",
        description="posts: every training post once per epoch; sqrt: posts drawn with "
        "replacement so that each place's share is proportional to the square root of its "
        "post count (head places drawn less, the long tail more)",
    )
    seed: int = 0
    progress: bool = True

    @property
    def buckets(self) -> bool:
        """Whether length bucketing is on: above 1 (a window of one batch sorts nothing)."""
        return self.bucket > 1


@dataclass(frozen=True)
class Example:
    """A labeled post: the post (str / PostFields / any object with those attributes) and
    the index of its location in the candidate list."""

    post: Any
    location: int


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per dev evaluation
    best_step: int = -1
    best_dev: float | None = None  # the dev criterion at best_step
    alpha: float = 1.0  # WiSE-FT: 1 = the fine-tuned weights, 0 = the pre-trained ones
    rerank_weight: float | None = None
    seconds: float = 0.0  # setting up (locking, encoding the candidates) and training


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warmup to 1, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def freeze_lower_layers(model: ContrastGeo, n: int) -> int:
    """Freeze the embeddings and the lowest ``n`` transformer layers of every encoder
    (BERT-style parameter names). Returns the number of frozen tensors."""
    if n == 0:
        return 0
    prefixes = ("embeddings.", *(f"encoder.layer.{i}." for i in range(n)))
    frozen = 0
    for encoder in {model.post_encoder, model.encoder_for_locations}:  # one when shared
        for name, param in encoder.backbone.named_parameters():
            if name.startswith(prefixes):
                param.requires_grad_(False)
                frozen += 1
    if frozen == 0:
        raise ValueError(
            "freeze_layers found no 'embeddings.'/'encoder.layer.N.' parameters: "
            "this backbone names its layers differently"
        )
    return frozen


def freeze_word_embeddings(model: ContrastGeo, setting: str) -> bool:
    """Freeze every encoder's word-embedding table when ``setting`` (or, for ``auto``, the
    named encoder) says so; the position and type embeddings keep training. Returns whether
    the table is frozen."""
    if setting == "auto":
        named = named_encoder(model.config.encoder.checkpoint)
        frozen = bool(named and named.freeze_word_embeddings)
    else:
        frozen = setting == "frozen"
    if frozen:
        for encoder in {model.post_encoder, model.encoder_for_locations}:  # one when shared
            encoder.backbone.get_input_embeddings().weight.requires_grad_(False)
    return frozen


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with three groups: the language model(s) at ``lr``, the temperature at
    ``temperature_lr``, everything new at ``head_lr``. No weight decay on biases, norms and
    the temperature."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if ".backbone." in f".{name}":
            lr = config.lr
        elif name.endswith("logit_scale"):
            lr = config.temperature_lr
        else:
            lr = config.head_lr
        decay = 0.0 if param.dim() < 2 else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return torch.optim.AdamW(
        [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
    )


class LocationCache:
    """Location encodings reused across steps. ``refresh=1`` re-encodes every location
    with gradients at every step (the paper's setting); ``refresh=n`` re-encodes them with
    gradients every n-th step and reuses those (detached) in between, trading location-side
    gradient for speed."""

    def __init__(self, refresh: int = 1):
        self.refresh, self.step, self.encoded = refresh, 0, None

    def get(self, model: ContrastGeo, locations: Sequence[Location]) -> Encoded:
        if self.encoded is None or self.step % self.refresh == 0:
            encoded = model.encode_locations(locations)
            self.encoded = encoded.detached() if self.refresh > 1 else None
        else:
            encoded = self.encoded
        self.step += 1
        return encoded


class LockedLocations:
    """The encodings of a locked location encoder (``ContrastGeo.lock_location_encoder``):
    the same at every step, so they are encoded once (through the memo) and TLC runs
    against every candidate exactly, with no bank and no staleness."""

    def __init__(self, model: ContrastGeo, locations: Sequence[Location], memo: EncodingMemo):
        # the weights cannot change while training: the memo is asked once, not per step,
        # and before step 0's dev evaluation, whose embeddings are then these
        self.encoded = memo.encoded(model, locations)

    def get(self, model: ContrastGeo, locations: Sequence[Location]) -> Encoded:
        return self.encoded


class LocationBank:
    """TLC against thousands of candidates without encoding all of them with gradients at
    every step (a catalogue of 10,000 places is 30,000 prompts).

    Every candidate's embedding is kept without gradient, re-encoded (eval mode) every
    ``refresh`` steps. At each step the batch's gold locations and, per post, its
    ``negatives`` most similar other locations in the bank (hard negatives by TLC
    similarity) are re-encoded with gradients, and TLC and TLM run over those *active*
    rows only (the batch's gold places and every post's mined negatives), as ANCE (Xiong et
    al. 2021) trains against an index refreshed asynchronously. The stale rows only choose
    the negatives: mixed into the softmax, they let a trained encoder lower the loss by
    scoring the rows it has just re-encoded (which always hold the gold ones) above the
    stale ones, and the Dutch catalogue's dev MRR fell to chance (docs/experiments.md). A
    step costs O(batch × negatives) encodings whatever the catalogue's size; only the
    refresh grows with it. With a ``memo``, a refresh at weights the dev evaluation has
    just encoded (or the reverse) costs nothing."""

    def __init__(self, refresh: int = 25, negatives: int = 8, memo: EncodingMemo | None = None):
        self.refresh, self.negatives, self.memo = refresh, negatives, memo
        self.step_count, self.embeddings = 0, None

    def step(
        self,
        model: ContrastGeo,
        locations: Sequence[Location],
        posts: torch.Tensor,
        gold: torch.Tensor,
    ) -> tuple[torch.Tensor, Encoded]:
        """(active location indices, sorted; their fresh encodings, with gradients)."""
        if self.embeddings is None or self.step_count % self.refresh == 0:
            # a copy: the bank's rows are overwritten below, the memo's must not be
            embeddings = _embed_locations(model, locations, self.memo)
            self.embeddings = embeddings.to(posts.device, copy=True)
        self.step_count += 1
        with torch.no_grad():
            similarity = posts.detach() @ self.embeddings.T
            similarity[torch.arange(len(gold)), gold] = float("-inf")
            mined = similarity.topk(min(self.negatives, len(locations) - 1), dim=1).indices
        active = torch.unique(torch.cat([gold, mined.reshape(-1)]))
        fresh = model.encode_locations([locations[i] for i in active.tolist()])
        self.embeddings[active] = fresh.embeddings.detach()
        return active, fresh


def locks_locations(mode: str, train: Sequence[Example], locations: Sequence[Location]) -> bool:
    """Whether ``fit`` locks the location encoder (``TrainConfig.location_encoder``)."""
    if mode == "auto":
        labeled = len({ex.location for ex in train})
        return labeled < len(locations) / 2
    return mode == "locked"


def _embed_locations(
    model: ContrastGeo, locations: Sequence[Location], memo: EncodingMemo | None
) -> torch.Tensor:
    """``model.embed_locations(locations)``, through ``memo`` when there is one."""
    return memo.embeddings(model, locations) if memo else model.embed_locations(locations)


def training_step(
    model: ContrastGeo,
    batch: Sequence[Example],
    locations: Sequence[Location],
    config: TrainConfig,
    generator: torch.Generator,
    cache: LocationCache | LockedLocations | None = None,
    bank: LocationBank | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """TLC over the candidates, TLM on the gold pair and mined negatives. Without a bank
    both run over every location, encoded (or taken from ``cache``); with one, over the
    locations the bank re-encoded for this batch."""
    posts = model.encode_posts([ex.post for ex in batch])
    gold = torch.tensor([ex.location for ex in batch], device=model.device)
    if bank is None:
        locs = (cache or LocationCache()).get(model, locations)
    else:
        active, locs = bank.step(model, locations, posts.embeddings, gold)
        gold = torch.searchsorted(active, gold)  # a column of the active rows, all golds
    embeddings = locs.embeddings
    positives = positive_mask(gold, embeddings.shape[0])
    logits = model.inverse_temperature() * posts.embeddings @ embeddings.T
    loss_tlc = tlc_loss(
        posts.embeddings,
        embeddings,
        positives,
        model.inverse_temperature(),
        config.symmetric_tlc,
    )
    loss = config.tlc_weight * loss_tlc
    stats = {"tlc": loss_tlc.item()}
    k = min(config.negatives, logits.shape[1] - 1)
    if config.tlm_weight > 0 and k > 0:
        negatives = sample_negatives(logits, positives, k, config.mining, generator)
        candidates = torch.cat([gold[:, None], negatives], dim=1)
        match = model.match_logits(posts, locs, candidates)
        loss_tlm = tlm_loss(match, match_labels(len(batch), k, model.device))
        loss = loss + config.tlm_weight * loss_tlm
        stats["tlm"] = loss_tlm.item()
    stats["loss"] = loss.item()
    return loss, stats


def reciprocal_ranks(scores: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """1 / rank of each row's gold column among all columns (ties counted against it)."""
    gold_score = scores.gather(1, gold[:, None])
    return 1.0 / (scores >= gold_score).sum(dim=1).float()


@torch.no_grad()
def tlc_mrr(
    model: ContrastGeo,
    examples: Sequence[Example],
    locations: Sequence[Location],
    memo: EncodingMemo | None = None,
):
    """Dev criterion: mean reciprocal rank of the gold location by TLC over all candidates
    (continuous where Acc@1 of a few hundred posts is coarse)."""
    texts = [ex.post for ex in examples]
    posts = memo.posts(model, texts) if memo else model.embed_posts(texts)
    scores = posts @ _embed_locations(model, locations, memo).T
    gold = torch.tensor([ex.location for ex in examples], device=scores.device)
    return float(reciprocal_ranks(scores, gold).mean())


def ranking_mrr(ranking: Ranking, examples: Sequence[Example]) -> float:
    """Mean reciprocal rank of the gold location in a two-stage ranking (its top k; 0 when
    the gold location is not among them)."""
    gold = torch.tensor([ex.location for ex in examples])[:, None]
    hit = ranking.indices.cpu() == gold
    ranks = hit.float().argmax(dim=1) + 1
    return float(torch.where(hit.any(dim=1), 1.0 / ranks, 0.0).mean())


def pretrained_parameters(model: ContrastGeo) -> dict[str, torch.Tensor]:
    """Copies of the parameters WiSE-FT interpolates: those with a pre-trained (or
    configured) value, the language model(s) and the temperature. Frozen ones (a frozen
    word-embedding table, a locked location encoder) never move, so they are not copied."""
    return {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if param.requires_grad and (".backbone." in f".{name}" or name == "logit_scale")
    }


@torch.no_grad()
def interpolate(
    model: torch.nn.Module,
    start: dict[str, torch.Tensor],
    end: dict[str, torch.Tensor],
    alpha: float,
) -> None:
    """Set each parameter named in ``start`` to (1 − α)·start + α·end (WiSE-FT)."""
    params = dict(model.named_parameters())
    for name, theta0 in start.items():
        params[name].copy_(theta0 if alpha == 0 else torch.lerp(theta0, end[name], alpha))


def select_interpolation(
    model: ContrastGeo,
    pretrained: dict[str, torch.Tensor],
    dev: Sequence[Example],
    locations: Sequence[Location],
    alphas: Sequence[float],
    finetuned_score: float | None = None,
    memo: EncodingMemo | None = None,
    pretrained_score: float | None = None,
) -> float:
    """Pick α on dev TLC MRR (ties: the larger α, the model as trained) and leave the model
    interpolated with it. ``finetuned_score`` and ``pretrained_score``, the dev TLC MRR of
    the model as trained and of the pre-trained weights (step 0) when known, spare
    evaluating α = 1 and α = 0 again (TLC reads only the interpolated weights); when
    training kept the pre-trained weights every α is the same model, and α = 1 is kept
    without evaluating any."""
    params = dict(model.named_parameters())
    finetuned = {name: params[name].detach().clone() for name in pretrained}
    if all(torch.equal(finetuned[name], theta0) for name, theta0 in pretrained.items()):
        return 1.0
    best_alpha, best = 1.0, None
    for alpha in sorted(alphas, reverse=True):
        interpolate(model, pretrained, finetuned, alpha)
        known = {1.0: finetuned_score, 0.0: pretrained_score}.get(alpha)
        score = known if known is not None else tlc_mrr(model, dev, locations, memo)
        log.debug("interpolation", alpha=alpha, dev_tlc_mrr=score)
        if best is None or score > best:
            best_alpha, best = alpha, score
    interpolate(model, pretrained, finetuned, best_alpha)
    return best_alpha


def select_rerank_weight(
    model: ContrastGeo,
    dev: Sequence[Example],
    locations: Sequence[Location],
    weights: Sequence[float],
    memo: EncodingMemo | None = None,
) -> float:
    """Pick the rerank weight w on the dev two-stage MRR (ties: the smaller w, TLC alone
    unless the matching head helps) and write it into the model's config. The dev posts
    are ranked once (by TLC, w = 0) and reranked at each w."""
    set_rerank_weight(model, 0.0)
    encoded = memo.encoded(model, locations) if memo else None
    by_tlc = model.predict([ex.post for ex in dev], locations, encoded_locations=encoded)
    best_weight, best = None, None
    for weight in sorted(weights):
        score = ranking_mrr(rerank(by_tlc, weight), dev)
        log.debug("rerank weight", w=weight, dev_mrr=score)
        if best is None or score > best:
            best_weight, best = weight, score
    set_rerank_weight(model, best_weight)
    return best_weight


def set_rerank_weight(model: ContrastGeo, weight: float) -> None:
    rerank = model.config.rerank.model_copy(update={"tlm_weight": weight})
    model.config = model.config.model_copy(update={"rerank": rerank})


def fit(
    model: ContrastGeo,
    train: Sequence[Example],
    locations: Sequence[Location],
    config: TrainConfig | None = None,
    dev: Sequence[Example] | None = None,
    memo: EncodingMemo | None = None,
) -> FitResult:
    """Train in place for ``config.steps``. With ``dev``: the step (0 included) with the
    best dev TLC MRR is kept, then the WiSE-FT α and the rerank weight are picked on dev
    (see the module doc); without, the last step's weights are kept. ``memo`` (one is
    made when not given) spares re-encoding the candidates at weights already encoded;
    pass one shared across fits to share the untrained model's encoding too."""
    config = config or TrainConfig()
    if len(locations) < 2:
        raise ValueError("ContrastGeo needs at least two candidate locations")
    bad = [ex.location for ex in train if not 0 <= ex.location < len(locations)]
    if bad:
        raise ValueError(f"example locations out of range 0..{len(locations) - 1}: {bad[:5]}")
    start = time.perf_counter()
    if locks_locations(config.location_encoder, train, locations):
        model.lock_location_encoder()
    freeze_lower_layers(model, config.freeze_layers)
    freeze_word_embeddings(model, config.word_embeddings)
    memo = memo or EncodingMemo()
    cache: LocationCache | LockedLocations = LocationCache(config.location_refresh)
    bank = None
    if model.location_encoder_locked:
        cache = LockedLocations(model, locations, memo)
    elif len(locations) > config.bank_above:
        bank = LocationBank(config.bank_refresh, config.bank_negatives, memo)
    pretrained = pretrained_parameters(model)

    def step(batch: Sequence[Example], generator: torch.Generator):
        return training_step(model, batch, locations, config, generator, cache, bank)

    def score() -> float:
        return tlc_mrr(model, dev, locations, memo)

    lengths = bucket_lengths(model, train, config)
    result = train_loop(model, train, config, step, score if dev else None, lengths)
    result.seconds = time.perf_counter() - start  # with the locked candidates' encoding
    if dev:
        with eval_mode(model):
            result.alpha = select_interpolation(
                model,
                pretrained,
                dev,
                locations,
                config.interpolation,
                result.best_dev,
                memo,
                pretrained_score=result.history[0]["dev"],  # step 0: the pre-trained weights
            )
            if config.rerank_weights is not None:
                result.rerank_weight = select_rerank_weight(
                    model, dev, locations, config.rerank_weights, memo
                )
    log.info(
        "fit",
        steps=config.steps,
        best_step=result.best_step,
        alpha=result.alpha,
        rerank_weight=result.rerank_weight,
        seconds=round(result.seconds, 1),
    )
    return result


def bucket_lengths(
    model: ContrastGeo, examples: Sequence[Example], config: TrainConfig
) -> list[int] | None:
    """What length bucketing (``TrainConfig.bucket``) sorts by: the characters of what the
    model reads of each example's post (text + profile under text+meta prompts); None,
    and no text composed, when the config does not bucket."""
    if not config.buckets:
        return None
    return [len(text) for text in model.post_texts([ex.post for ex in examples])]


def train_loop(
    model: torch.nn.Module,
    train: Sequence[Any],
    config: TrainConfig,
    step_fn: Callable[[Sequence[Any], torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    dev_score: Callable[[], float] | None = None,
    lengths: Sequence[int] | None = None,
) -> FitResult:
    """The optimization loop shared by ContrastGeo and the fine-tuned baseline: ``steps``
    batches from seeded shuffles, AdamW with warmup + linear decay, gradient clipping, a
    progress bar; with ``dev_score`` (higher is better), an evaluation at step 0 and every
    ``eval_every`` steps, early stopping after ``patience`` evaluations without a gain, and
    the best weights restored (the untrained ones when no step beat them). ``lengths``
    (one per training item, e.g. the characters of the text the model reads) is what
    ``config.bucket`` sorts by."""
    if not train:
        raise ValueError("no training examples")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = build_optimizer(model, config)
    total = config.steps
    warmup = max(1, int(config.warmup_ratio * total))
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    stale, sums, since = 0, {}, 0
    start = time.perf_counter()

    def evaluate(step: int) -> bool:
        """Record the dev score at ``step``; False once patience has run out."""
        nonlocal best_state, stale, sums, since
        record = {"step": step, **{k: v / max(1, since) for k, v in sums.items()}}
        sums, since = {}, 0
        if dev_score is not None:
            with eval_mode(model):
                record["dev"] = dev_score()
            if result.best_dev is None or record["dev"] > result.best_dev:
                result.best_dev, result.best_step, stale = record["dev"], step, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        result.history.append(record)
        log.debug("evaluation", **record)
        return dev_score is None or stale < config.patience

    # leave=None: the bar stays when it is the only one (fit), and goes when it sits under
    # another (a benchmark's bar of runs)
    bar = tqdm(total=total, desc="training", unit="step", disable=not config.progress, leave=None)
    batches = _batch_stream(train, config, generator, lengths)
    going = evaluate(0) if dev_score is not None else True
    step = 0
    while going and step < total:
        model.train()
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * lr_factor(step, total, warmup)
        loss, stats = step_fn([train[i] for i in next(batches)], generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value
        step, since = step + 1, since + 1
        bar.update(1)
        bar.set_postfix(loss=f"{stats['loss']:.3f}")
        if step % config.eval_every == 0 or step == total:
            going = evaluate(step)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_step = step
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def _batch_stream(
    train: Sequence[Any],
    config: TrainConfig,
    generator: torch.Generator,
    lengths: Sequence[int] | None = None,
):
    """Batches of indices forever: one seeded shuffle of the training set after another."""
    while True:
        yield from _batches(train, config, generator, lengths)


def _batches(
    train: Sequence[Any],
    config: TrainConfig,
    generator: torch.Generator,
    lengths: Sequence[int] | None = None,
) -> list[list[int]]:
    """Shuffled batches of indices. With ``bucket``, each window of ``bucket`` batches is
    sorted by ``lengths`` (one per training item, ``bucket_lengths``) before it is cut, so
    a batch pads to similar lengths; the batch order is shuffled again so lengths do not
    trend within an epoch."""
    order = _epoch_order(train, config.sampling, generator)
    size = config.batch_size
    if config.buckets:
        if lengths is None:
            raise ValueError("bucketing (TrainConfig.bucket > 1) needs the items' lengths")
        window = size * config.bucket
        order = [
            i
            for s in range(0, len(order), window)
            for i in sorted(order[s : s + window], key=lengths.__getitem__)
        ]
    batches = [order[s : s + size] for s in range(0, len(order), size)]
    if config.buckets:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    return batches


def _epoch_order(train: Sequence[Any], sampling: str, generator: torch.Generator) -> list[int]:
    """One epoch's indices: a permutation, or (``sqrt``) as many draws with replacement
    with post i weighted by 1 / sqrt(posts of its place), so that a place's share is
    proportional to the square root of its post count."""
    if sampling == "posts":
        return torch.randperm(len(train), generator=generator).tolist()
    places = torch.tensor([ex.location for ex in train])
    per_place = torch.bincount(places)
    weights = per_place[places].double().rsqrt()
    return torch.multinomial(weights, len(train), True, generator=generator).tolist()
