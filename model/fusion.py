"""The three ways the matching head (TLM) sees a post and a candidate location together.

Every fusion maps a batch of B posts and K candidate locations per post to a joint
representation (B, K, F); ``MatchingHead`` (a ``Linear(F, 2)``) scores it.

- ``VectorFusion``: pooled post and location embeddings combined (sum / concat / interact),
  then a small fusion encoder. Cheapest: at serving time it needs only the vectors the index
  already stores.
- ``CrossAttentionFusion``: post token states attend to the location's token states.
- token-level fusion: the language model itself reads "post [SEP] location" (see
  ``ContrastGeo.match_logits``, which runs the shared backbone on the pair); ``TokenFusion``
  here only pools the pair's token states.

Attention is written out with matmuls (no ``nn.MultiheadAttention`` fast path) so that the
graphs export to ONNX as plain ops.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from model.config import FusionConfig, Pooling
from model.encoders import pool


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """x: (N, Lq, D) queries; context: (N, Lk, D); context_mask: (N, Lk), 1 = attend."""
        n, lq, d = x.shape
        h = self.heads
        q = self.q(x).view(n, lq, h, d // h).transpose(1, 2)  # (N, h, Lq, d/h)
        k, v = self.kv(context).view(n, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)  # (N, h, Lq, Lk)
        blocked = context_mask[:, None, None, :] == 0
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        attn = self.dropout(torch.softmax(scores, dim=-1))
        return self.out((attn @ v).transpose(1, 2).reshape(n, lq, d))


class AttentionBlock(nn.Module):
    """Pre-norm attention (to a context, which may be the input itself) + feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        x = x + self.attention(self.norm_q(x), self.norm_kv(context), context_mask)
        return x + self.ff(self.norm_ff(x))


class VectorFusion(nn.Module):
    """(a) Vector fusion of pooled embeddings.

    combine: ``sum`` p + l; ``concat`` [p, l]; ``interact`` [p, l, p*l, |p-l|].
    encoder: ``mlp`` on the combined vector, or ``transformer``: one attention block over
    the 2-token sequence (p, l), whose outputs are then combined as above.
    """

    def __init__(self, embedding_dim: int, config: FusionConfig):
        super().__init__()
        self.combine = config.vector_combine
        self.encoder_type = config.vector_encoder
        width = {"sum": 1, "concat": 2, "interact": 4}[self.combine] * embedding_dim
        self.output_dim = config.hidden_dim or embedding_dim
        if self.encoder_type == "transformer":
            heads = config.heads if embedding_dim % config.heads == 0 else 1
            self.block = AttentionBlock(embedding_dim, heads, config.dropout)
        self.mlp = nn.Sequential(
            nn.Linear(width, self.output_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(self.output_dim, self.output_dim),
            nn.GELU(),
        )

    def _combine(self, p: Tensor, loc: Tensor) -> Tensor:
        if self.combine == "sum":
            return p + loc
        if self.combine == "concat":
            return torch.cat([p, loc], dim=-1)
        return torch.cat([p, loc, p * loc, (p - loc).abs()], dim=-1)

    def forward(self, post: Tensor, locations: Tensor) -> Tensor:
        """post: (B, D); locations: (B, K, D) -> (B, K, F)."""
        p = post.unsqueeze(1).expand_as(locations)
        if self.encoder_type == "transformer":
            b, k, d = locations.shape
            pair = torch.stack([p, locations], dim=2).reshape(b * k, 2, d)
            pair = self.block(pair, pair, torch.ones(b * k, 2, device=pair.device))
            p, locations = pair.reshape(b, k, 2, d).unbind(dim=2)
        return self.mlp(self._combine(p, locations))


class CrossAttentionFusion(nn.Module):
    """(b) Post token states attend to candidate-location token states (ALBEF-style)."""

    def __init__(self, hidden_size: int, config: FusionConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            AttentionBlock(hidden_size, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.output_dim = hidden_size

    def forward(
        self, post_states: Tensor, post_mask: Tensor, loc_states: Tensor, loc_mask: Tensor
    ) -> Tensor:
        """post_states: (B, Lp, H), post_mask: (B, Lp); loc_states: (B, K, Ll, H),
        loc_mask: (B, K, Ll) -> (B, K, H): masked mean of the attended post tokens."""
        b, k, ll, h = loc_states.shape
        lp = post_states.shape[1]
        x = post_states.unsqueeze(1).expand(b, k, lp, h).reshape(b * k, lp, h)
        context = loc_states.reshape(b * k, ll, h)
        context_mask = loc_mask.reshape(b * k, ll)
        for block in self.blocks:
            x = block(x, context, context_mask)
        q_mask = post_mask.unsqueeze(1).expand(b, k, lp).reshape(b * k, lp)
        weights = q_mask.unsqueeze(-1).to(x.dtype)
        pooled = (self.norm(x) * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return pooled.reshape(b, k, h)


class TokenFusion(nn.Module):
    """(c) Token-level fusion: pools the language model's states over "post [SEP] location".

    The backbone run itself happens in ``ContrastGeo`` (it is the shared post encoder, which
    must not be registered twice); this module owns the pooling and a dropout.
    """

    def __init__(self, hidden_size: int, pooling: Pooling, config: FusionConfig):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(config.dropout)
        self.output_dim = hidden_size

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        """hidden states of (B*K) pairs -> (B*K, H)."""
        return self.dropout(pool(self.pooling, hidden_states, mask))


class MatchingHead(nn.Module):
    """TLM head: joint representation -> logits of [no match, match]."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2)

    def forward(self, joint: Tensor) -> Tensor:
        return self.linear(joint)


def match_log_odds(logits: Tensor) -> Tensor:
    """Log-odds of a match from the head's 2-way logits (log p(match) - log p(no match))."""
    return logits[..., 1] - logits[..., 0]
