"""Few-shot training of a ContrastGeo model: loss = w_tlc * TLC + w_tlm * TLM.

One loop, three helpers (``lr_factor``, ``training_step``, ``evaluate_acc1``), nanoGPT style.
Each step encodes the batch's posts and all candidate locations, computes TLC against all of
them, draws hard negatives from the detached TLC logits and trains the matching head on the
gold pair plus those negatives.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from model.contrastgeo import ContrastGeo, eval_mode
from model.encoders import Encoded
from model.losses import match_labels, positive_mask, tlc_loss, tlm_loss
from model.mining import MiningMode, sample_negatives
from model.prompts import Location

log = structlog.get_logger(__name__)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(15, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0, description="Learning rate of the language model.")
    head_lr: float = Field(1e-3, gt=0, description="Learning rate of fusion, head, scale.")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    tlc_weight: float = Field(1.0, ge=0)
    tlm_weight: float = Field(1.0, ge=0)
    negatives: int = Field(3, ge=0, description="Mined negatives per post for TLM.")
    mining: MiningMode = "hard"
    symmetric_tlc: bool = False
    freeze_layers: int = Field(0, ge=0, description="Freeze embeddings + the lowest N layers.")
    patience: int = Field(3, ge=1, description="Epochs without dev Acc@1 gain before stop.")
    min_steps: int = Field(
        0,
        ge=0,
        description="Train at least this many optimizer steps: with few examples an epoch "
        "makes several passes over them (dev is still checked once an epoch).",
    )
    grad_clip: float = Field(1.0, gt=0)
    location_refresh: int = Field(
        1, ge=1, description="Re-encode locations with gradients every N steps (1 = always)."
    )
    bucket: int = Field(
        0, ge=0, description="Sort windows of this many batches by length (0 = off)."
    )
    seed: int = 0
    progress: bool = True


@dataclass(frozen=True)
class Example:
    """A labeled post: the post (str / PostFields / any object with those attributes) and
    the index of its location in the candidate list."""

    post: Any
    location: int


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_dev_acc1: float | None = None
    seconds: float = 0.0


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
    for encoder in {model.post_encoder, model.loc_encoder}:  # one when shared
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


def build_optimizer(model: ContrastGeo, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: the language model(s) at ``lr``, everything new at
    ``head_lr``. No weight decay on biases, norms and the temperature."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = config.lr if ".backbone." in f".{name}" else config.head_lr
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


def training_step(
    model: ContrastGeo,
    batch: Sequence[Example],
    locations: Sequence[Location],
    config: TrainConfig,
    generator: torch.Generator,
    cache: LocationCache | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    posts = model.encode_posts([ex.post for ex in batch])
    locs = (cache or LocationCache()).get(model, locations)
    gold = torch.tensor([ex.location for ex in batch], device=model.device)
    positives = positive_mask(gold, len(locations))
    logits = model.tlc_logits(posts, locs)
    loss_tlc = tlc_loss(
        posts.embeddings, locs.embeddings, positives, model.scale(), config.symmetric_tlc
    )
    loss = config.tlc_weight * loss_tlc
    stats = {"tlc": loss_tlc.item()}
    k = min(config.negatives, len(locations) - 1)
    if config.tlm_weight > 0 and k > 0:
        negatives = sample_negatives(logits, positives, k, config.mining, generator)
        candidates = torch.cat([gold[:, None], negatives], dim=1)
        match = model.match_logits(posts, locs, candidates)
        loss_tlm = tlm_loss(match, match_labels(len(batch), k, model.device))
        loss = loss + config.tlm_weight * loss_tlm
        stats["tlm"] = loss_tlm.item()
    stats["loss"] = loss.item()
    return loss, stats


@torch.no_grad()
def evaluate_acc1(
    model: ContrastGeo, examples: Sequence[Example], locations: Sequence[Location]
) -> float:
    ranking = model.predict([ex.post for ex in examples], locations)
    gold = torch.tensor([ex.location for ex in examples])
    return float((ranking.indices[:, 0].cpu() == gold).float().mean())


def fit(
    model: ContrastGeo,
    train: Sequence[Example],
    locations: Sequence[Location],
    config: TrainConfig | None = None,
    dev: Sequence[Example] | None = None,
) -> FitResult:
    """Train in place. With ``dev``, stops early on dev Acc@1 and restores the best
    weights; without, trains for ``epochs``."""
    config = config or TrainConfig()
    if len(locations) < 2:
        raise ValueError("ContrastGeo needs at least two candidate locations")
    bad = [ex.location for ex in train if not 0 <= ex.location < len(locations)]
    if bad:
        raise ValueError(f"example locations out of range 0..{len(locations) - 1}: {bad[:5]}")
    freeze_lower_layers(model, config.freeze_layers)
    cache = LocationCache(config.location_refresh)

    def step(batch: Sequence[Example], generator: torch.Generator):
        return training_step(model, batch, locations, config, generator, cache)

    def score() -> float:
        return evaluate_acc1(model, dev, locations)

    return train_loop(model, train, config, step, score if dev else None)


def train_loop(
    model: torch.nn.Module,
    train: Sequence[Any],
    config: TrainConfig,
    step_fn: Callable[[Sequence[Any], torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    dev_score: Callable[[], float] | None = None,
) -> FitResult:
    """The optimization loop shared by ContrastGeo and the fine-tuned baseline: seeded
    shuffles, AdamW with warmup + linear decay, gradient clipping, a progress bar, and (with
    ``dev_score``) early stopping that restores the best weights."""
    if not train:
        raise ValueError("no training examples")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = build_optimizer(model, config)
    batches_per_pass = -(-len(train) // config.batch_size)
    passes = max(1, -(-config.min_steps // (batches_per_pass * config.epochs)))
    steps_per_epoch = batches_per_pass * passes
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_ratio * total))
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    stale, step, start = 0, 0, time.perf_counter()

    bar = tqdm(total=total, desc="training", unit="step", disable=not config.progress)
    for epoch in range(config.epochs):
        model.train()
        sums: dict[str, float] = {}
        epoch_batches = [b for _ in range(passes) for b in _batches(train, config, generator)]
        for batch_ids in epoch_batches:
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_factor(step, total, warmup)
            loss, stats = step_fn([train[i] for i in batch_ids], generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}")
        record = {"epoch": epoch, **{k: v / steps_per_epoch for k, v in sums.items()}}
        if dev_score is not None:
            with eval_mode(model):
                record["dev_acc1"] = dev_score()
            if result.best_dev_acc1 is None or record["dev_acc1"] > result.best_dev_acc1:
                result.best_dev_acc1, result.best_epoch, stale = record["dev_acc1"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        log.debug("epoch", **record)
        result.history.append(record)
        if dev_score is not None and stale >= config.patience:
            log.debug("early_stop", epoch=epoch, best_epoch=result.best_epoch)
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history) - 1
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def _batches(
    train: Sequence[Any], config: TrainConfig, generator: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of indices. With ``bucket``, each window of ``bucket`` batches is
    sorted by text length before it is cut, so a batch pads to similar lengths; the batch
    order is shuffled again so lengths do not trend within an epoch."""
    order = torch.randperm(len(train), generator=generator).tolist()
    size, window = config.batch_size, config.batch_size * max(1, config.bucket)
    if config.bucket > 1:
        lengths = [len(getattr(ex.post, "text", ex.post)) for ex in train]
        order = [
            i
            for s in range(0, len(order), window)
            for i in sorted(order[s : s + window], key=lengths.__getitem__)
        ]
    batches = [order[s : s + size] for s in range(0, len(order), size)]
    if config.bucket > 1:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
    return batches
