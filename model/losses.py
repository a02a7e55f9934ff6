"""The two ContrastGeo objectives, as pure functions of model outputs.

TLC (tweet-location contrastive): each post is scored against *all* candidate locations; the
target distribution spreads evenly over the post's positive locations (usually one, but a
post may carry several, e.g. a district and its city).

TLM (tweet-location matching): a binary classifier on the fused (post, location)
representation, trained on the gold pair and mined negative pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def positive_mask(labels: Tensor, num_locations: int) -> Tensor:
    """(B,) location indices -> (B, N) boolean mask of positives."""
    return F.one_hot(labels, num_locations).bool()


def tlc_loss(
    post_embeddings: Tensor,
    location_embeddings: Tensor,
    positives: Tensor,
    inverse_temperature: Tensor | float,
    symmetric: bool = False,
) -> Tensor:
    """Tweet-location contrastive loss.

    post_embeddings: (B, D) and location_embeddings: (N, D), both L2-normalized.
    positives: (B, N) boolean, at least one True per row (or (B,) location indices).
    inverse_temperature: 1 / temperature.

    Post -> location: cross-entropy between softmax(scale * sim) over all N locations and the
    uniform distribution over the row's positives (ALBEF's ``pos_idx / pos_idx.sum(1)``).
    With ``symmetric``, the location -> post direction is added for every location that has a
    positive post in the batch, and the two directions are averaged.
    """
    if positives.dim() == 1:
        positives = positive_mask(positives, location_embeddings.shape[0])
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every post needs at least one positive location")
    logits = inverse_temperature * post_embeddings @ location_embeddings.T  # (B, N)
    loss = _soft_cross_entropy(logits, positives)
    if not symmetric:
        return loss
    present = positives.any(dim=0)  # locations with a post in the batch
    loc_loss = _soft_cross_entropy(logits.T[present], positives.T[present])
    return (loss + loc_loss) / 2


def _soft_cross_entropy(logits: Tensor, positives: Tensor) -> Tensor:
    targets = positives.to(logits.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def tlm_loss(match_logits: Tensor, labels: Tensor) -> Tensor:
    """Tweet-location matching loss: 2-way cross-entropy over (post, location) pairs.

    match_logits: (..., 2) logits of [no match, match]; labels: (...) with 1 for a match.
    """
    return F.cross_entropy(match_logits.reshape(-1, 2), labels.reshape(-1).long())


def match_labels(batch_size: int, num_negatives: int, device: torch.device | None = None):
    """Labels for candidates laid out as [gold, negative_1, ..., negative_k] per post."""
    labels = torch.zeros(batch_size, 1 + num_negatives, dtype=torch.long, device=device)
    labels[:, 0] = 1
    return labels
