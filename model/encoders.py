"""Post and location encoders over a Hugging Face language model.

``TextEncoder`` = backbone -> pooling -> optional projection -> L2 normalization. The same
class encodes posts and location prompts; the model shares one instance by default.
Everything here is written with ONNX export in mind: plain tensor ops, no data-dependent
Python control flow in ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from model.config import EncoderConfig, Pooling
from model.pretrained import EncoderNotInstalled, resolve_checkpoint


def load_backbone(checkpoint: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a pre-trained language model and its tokenizer, with a clear error if absent."""
    try:
        path = resolve_checkpoint(checkpoint)
    except EncoderNotInstalled as exc:
        raise FileNotFoundError(f"cannot load encoder {checkpoint!r}: {exc}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        backbone = AutoModel.from_pretrained(path)
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot load encoder checkpoint {checkpoint!r} (resolved to {path!r}): {exc}. "
            "Give a local Hugging Face model folder; nothing is downloaded at run time."
        ) from exc
    return backbone, tokenizer


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    # Written out (not F.normalize) so the exported graph is a plain ReduceL2/Div.
    return x / x.norm(p=2, dim=-1, keepdim=True).clamp_min(eps)


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean over the positions where ``mask`` is 1. states: (..., L, H), mask: (..., L)."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(-2) / weights.sum(-2).clamp_min(1.0)


def pool(method: Pooling, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
    """Pool token states into one vector per sequence.

    ``hidden_states`` is the backbone's tuple (embeddings output, layer 1, ..., layer L).
    ``first-last-avg`` averages the first and last *transformer layers* (layer 1 and L, not
    the embedding output), then mean-pools, as in SimCSE/BERT-whitening.
    """
    last = hidden_states[-1]
    if method == "cls":
        return last[:, 0]
    if method == "mean":
        return masked_mean(last, mask)
    if method == "max":
        fill = torch.finfo(last.dtype).min
        return last.masked_fill(mask.unsqueeze(-1) == 0, fill).amax(dim=1)
    if method == "first-last-avg":
        return masked_mean((hidden_states[1] + last) / 2, mask)
    raise ValueError(f"unknown pooling {method!r}")


@dataclass
class Encoded:
    """A batch of encoded texts: what the losses and the fusion strategies consume."""

    embeddings: Tensor  # (N, D) L2-normalized
    states: Tensor  # (N, L, H) last-layer token states
    mask: Tensor  # (N, L) attention mask
    texts: list[str]

    def select(self, index: Tensor) -> Encoded:
        """Rows by index, any index shape: (B, K) gives embeddings (B, K, D) etc."""
        flat = index.reshape(-1)
        texts = [self.texts[i] for i in flat.tolist()] if self.texts else []
        return Encoded(self.embeddings[index], self.states[index], self.mask[index], texts=texts)

    def detached(self) -> Encoded:
        return Encoded(self.embeddings.detach(), self.states.detach(), self.mask, self.texts)


class TextEncoder(nn.Module):
    """Backbone + pooling + optional projection + L2 normalization."""

    def __init__(self, backbone: PreTrainedModel, config: EncoderConfig):
        super().__init__()
        self.backbone = backbone
        self.pooling: Pooling = config.pooling
        hidden = backbone.config.hidden_size
        self.projection = (
            nn.Linear(hidden, config.projection_dim, bias=False)
            if config.projection_dim
            else nn.Identity()
        )
        self.hidden_size = hidden
        self.embedding_dim = config.projection_dim or hidden

    def token_states(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """All hidden states (embeddings output first), as the pooling functions expect."""
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=self.pooling == "first-last-avg",
            **kwargs,
        )
        if self.pooling == "first-last-avg":
            return tuple(out.hidden_states)
        return (out.last_hidden_state,)

    def embed(self, hidden_states: tuple[Tensor, ...], attention_mask: Tensor) -> Tensor:
        return l2_normalize(self.projection(pool(self.pooling, hidden_states, attention_mask)))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token ids and mask -> L2-normalized embedding (N, D). This is the exported graph."""
        return self.embed(self.token_states(input_ids, attention_mask), attention_mask)

    def encode(
        self, input_ids: Tensor, attention_mask: Tensor, texts: list[str] | None = None
    ) -> Encoded:
        """Embeddings plus token states, for training and the matching head."""
        hidden = self.token_states(input_ids, attention_mask)
        return Encoded(
            embeddings=self.embed(hidden, attention_mask),
            states=hidden[-1],
            mask=attention_mask,
            texts=texts or [],
        )
