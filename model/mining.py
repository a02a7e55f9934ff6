"""Online hard negatives for the matching head.

For each post, k negative locations are drawn from the softmax of its (detached) TLC logits
with the positive locations masked out: locations the contrastive stage confuses with the
gold one are the informative negatives for TLM (ALBEF's recipe). One vectorized draw for the
whole batch; reproducible through a ``torch.Generator``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from model.losses import positive_mask

MiningMode = Literal["hard", "topk", "random"]


def sample_negatives(
    tlc_logits: Tensor,
    positives: Tensor,
    k: int,
    mode: MiningMode = "hard",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick k negative location indices per post; never a positive.

    tlc_logits: (B, N) scaled post-location similarities (gradients are not kept).
    positives: (B, N) boolean mask, or (B,) gold indices.
    mode: ``hard`` samples from softmax(logits) over negatives, ``topk`` takes the k most
    similar negatives, ``random`` samples uniformly (the ablation without hard negatives).
    Returns (B, k) long indices, without repeats within a row.
    """
    logits = tlc_logits.detach().float()
    if positives.dim() == 1:
        positives = positive_mask(positives, logits.shape[1])
    available = int((~positives).sum(dim=1).min())
    if k > available:
        raise ValueError(
            f"asked for {k} negatives but a post has only {available} non-positive locations"
        )
    if k == 0:
        return torch.empty(logits.shape[0], 0, dtype=torch.long, device=logits.device)
    if mode == "random":
        logits = torch.zeros_like(logits)
    elif mode not in ("hard", "topk"):
        raise ValueError(f"unknown mining mode {mode!r}")
    logits = logits.masked_fill(positives, float("-inf"))
    if mode == "topk":
        return logits.topk(k, dim=1).indices
    # A tiny floor keeps every negative drawable when the softmax underflows to 0 (very
    # peaked rows); it changes no probability that float32 can tell apart.
    probs = torch.softmax(logits, dim=1) + 1e-12 * (~positives)
    return torch.multinomial(probs, k, replacement=False, generator=generator)
