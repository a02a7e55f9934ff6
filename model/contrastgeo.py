"""ContrastGeo: contrastive few-shot geolocation of posts.

    post ──► post encoder ──► embedding ─┐
                                         ├─ TLC: cosine × scale against ALL locations ──► top-k
    location prompts ──► location encoder ┘                                               │
                                                                                           ▼
    (post, candidate) ──► fusion (vector | cross-attention | token) ──► TLM head ──► rerank

``forward`` returns features; the losses live in ``model.losses`` and the training loop in
``trainer``. ``rank`` is the two-stage inference the service reproduces with ONNX + Qdrant.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from model.config import ContrastGeoConfig
from model.encoders import Encoded, TextEncoder, l2_normalize, load_backbone
from model.fusion import (
    CrossAttentionFusion,
    MatchingHead,
    TokenFusion,
    VectorFusion,
    match_log_odds,
)
from model.post_budget import counting_tokenizer, fit_post_inputs
from model.prompts import Location, location_inputs

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_DIR = "backbone"
TOKENIZER_DIR = "tokenizer"
MAX_LOGIT_SCALE = 100.0

T = TypeVar("T")


@dataclass
class Ranking:
    """Top-k locations per post, best first. All tensors are (B, k)."""

    indices: Tensor  # into the location list
    scores: Tensor  # combined score (RerankConfig)
    tlc_logprob: Tensor  # log p_TLC(location | post) over all locations
    tlm_logprob: Tensor  # log p_TLM(match | post, location)


@dataclass
class ContrastGeoOutput:
    posts: Encoded
    locations: Encoded
    inverse_temperature: Tensor  # 1 / temperature


class ContrastGeo(nn.Module):
    def __init__(
        self,
        config: ContrastGeoConfig,
        backbone: PreTrainedModel,
        tokenizer: Any,
        location_backbone: PreTrainedModel | None = None,
    ):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.post_encoder = TextEncoder(backbone, config.encoder)
        self.location_encoder: TextEncoder | None = None
        if not config.encoder.shared:
            if location_backbone is None:
                raise ValueError("encoder.shared=False needs a separate location backbone")
            self.location_encoder = TextEncoder(location_backbone, config.encoder)
        # log(1 / temperature), CLIP's parameterization (and name, kept in saved weights);
        # inverse_temperature() is 1 / temperature itself
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / config.temperature)),
            requires_grad=config.learnable_temperature,
        )
        fusion = config.fusion
        enc = self.post_encoder
        if fusion.strategy == "vector":
            self.fusion: nn.Module = VectorFusion(enc.embedding_dim, fusion)
        elif fusion.strategy == "cross-attention":
            self.fusion = CrossAttentionFusion(enc.hidden_size, fusion)
        else:
            self.fusion = TokenFusion(enc.hidden_size, config.encoder.pooling, fusion)
        self.matching_head = MatchingHead(self.fusion.output_dim)

    # ----------------------------------------------------------------- construction / io
    @classmethod
    def from_config(cls, config: ContrastGeoConfig | None = None) -> ContrastGeo:
        """A fresh model on top of the pre-trained checkpoint named in the config."""
        config = config or ContrastGeoConfig()
        backbone, tokenizer = load_backbone(config.encoder.checkpoint)
        location_backbone = None
        if not config.encoder.shared:
            location_backbone, _ = load_backbone(config.encoder.checkpoint)
        return cls(config, backbone, tokenizer, location_backbone)

    def save(self, folder: str | Path) -> Path:
        """Write config, backbone config, tokenizer and weights; the folder alone rebuilds
        the model. Written to a temporary sibling first, then renamed into place, so a
        crash never leaves a half-written model under ``folder``."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            (tmp / CONFIG_FILE).write_text(self.config.to_json())
            self.post_encoder.backbone.config.save_pretrained(tmp / BACKBONE_DIR)
            self.tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "pt"})
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> ContrastGeo:
        """Rebuild a saved model offline from its folder (strict: every weight must match)."""
        folder = Path(folder)
        missing = [
            n
            for n in (CONFIG_FILE, WEIGHTS_FILE, BACKBONE_DIR, TOKENIZER_DIR)
            if not (folder / n).exists()
        ]
        if missing:
            raise FileNotFoundError(f"{folder} is not a saved ContrastGeo model: missing {missing}")
        config = ContrastGeoConfig.from_json((folder / CONFIG_FILE).read_text())
        hf_config = AutoConfig.from_pretrained(folder / BACKBONE_DIR)
        backbone = AutoModel.from_config(hf_config)
        location_backbone = None if config.encoder.shared else AutoModel.from_config(hf_config)
        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR)
        model = cls(config, backbone, tokenizer, location_backbone)
        model.load_state_dict(load_file(folder / WEIGHTS_FILE), strict=True)
        return model.to(device).eval()

    # ----------------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def encoder_for_locations(self) -> TextEncoder:
        """The encoder that embeds location prompts: ``location_encoder`` when the config
        has separate encoders, else the post encoder."""
        return self.location_encoder or self.post_encoder

    def lock_location_encoder(self) -> None:
        """Embed locations with a frozen copy of the current encoder from now on (LiT's
        locked tower, Zhai et al. 2022): training then moves posts toward fixed location
        embeddings, which are computed once, and a place without labels keeps the
        embedding the labeled ones are compared with. The model becomes a two-encoder
        model (``encoder.shared`` false), saved, exported and served as such."""
        if self.location_encoder is None:
            self.location_encoder = copy.deepcopy(self.post_encoder)
            encoder = self.config.encoder.model_copy(update={"shared": False})
            self.config = self.config.model_copy(update={"encoder": encoder})
        self.location_encoder.requires_grad_(False)

    @property
    def location_encoder_locked(self) -> bool:
        """True when no location-encoder weight is trained (see ``lock_location_encoder``)."""
        return self.location_encoder is not None and not any(
            p.requires_grad for p in self.location_encoder.parameters()
        )

    def inverse_temperature(self) -> Tensor:
        """1 / temperature, clamped as in CLIP so training cannot blow it up."""
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    @functools.cached_property
    def _counting_tokenizer(self) -> Any:
        return counting_tokenizer(self.tokenizer.backend_tokenizer.to_str())

    def post_texts(self, posts: Sequence[Any]) -> list[str]:
        """What the encoder reads for each post, fitted into ``post_max_length`` tokens by
        field (``model.post_budget``)."""
        return fit_post_inputs(
            posts, self.config, self._counting_tokenizer, self.config.encoder.post_max_length
        )

    def _tokenize(self, texts: list[str], max_length: int, pairs: list[str] | None = None):
        batch = self.tokenizer(
            texts,
            pairs,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    # ---------------------------------------------------------------------- encoding
    def encode_posts(self, posts: Sequence[Any]) -> Encoded:
        """Posts (str, ``PostFields`` or any object with those attributes) -> ``Encoded``."""
        texts = self.post_texts(posts)
        batch = self._tokenize(texts, self.config.encoder.post_max_length)
        return self.post_encoder.encode(batch["input_ids"], batch["attention_mask"], texts)

    def encode_locations(self, locations: Sequence[Location]) -> Encoded:
        """Embeddings averaged over all prompt templates and renormalized (open_clip's
        zero-shot recipe); token states and text of the primary template."""
        n, t = len(locations), len(self.config.prompts.location_templates)
        flat = location_inputs(locations, self.config)  # (t * n)
        batch = self._tokenize(flat, self.config.encoder.location_max_length)
        enc = self.encoder_for_locations.encode(batch["input_ids"], batch["attention_mask"], flat)
        mean = enc.embeddings.view(t, n, -1).mean(dim=0)
        return Encoded(
            embeddings=l2_normalize(mean),
            states=enc.states[:n],
            mask=enc.mask[:n],
            texts=flat[:n],
        )

    def forward(self, posts: Sequence[Any], locations: Sequence[Location]) -> ContrastGeoOutput:
        return ContrastGeoOutput(
            self.encode_posts(posts), self.encode_locations(locations), self.inverse_temperature()
        )

    # ------------------------------------------------------------------ TLC and TLM
    def tlc_logits(self, posts: Encoded, locations: Encoded) -> Tensor:
        """(B, N) scaled cosine similarities of every post to every location."""
        return self.inverse_temperature() * posts.embeddings @ locations.embeddings.T

    def match_logits(self, posts: Encoded, locations: Encoded, candidates: Tensor) -> Tensor:
        """TLM logits (B, K, 2) of [no match, match] for each post and its K candidate
        locations (indices into ``locations``)."""
        b, k = candidates.shape
        cand = locations.select(candidates)
        strategy = self.config.fusion.strategy
        if strategy == "vector":
            joint = self.fusion(posts.embeddings, cand.embeddings)
        elif strategy == "cross-attention":
            joint = self.fusion(posts.states, posts.mask, cand.states, cand.mask)
        else:  # token-level: the language model reads post and location text together
            post_texts = [t for t in posts.texts for _ in range(k)]
            enc = self.config.encoder
            batch = self._tokenize(
                post_texts, enc.post_max_length + enc.location_max_length, cand.texts
            )
            hidden = self.post_encoder.token_states(
                batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
            )
            joint = self.fusion(hidden, batch["attention_mask"]).view(b, k, -1)
        return self.matching_head(joint)

    def rank(self, posts: Encoded, locations: Encoded, k: int | None = None) -> Ranking:
        """Two-stage ranking: all locations by TLC, then the top k reranked with TLM
        (combination rule: ``RerankConfig``)."""
        k = min(k or self.config.rerank.k, locations.embeddings.shape[0])
        tlc = torch.log_softmax(self.tlc_logits(posts, locations), dim=1)
        top_tlc, top_idx = tlc.topk(k, dim=1)
        tlm = F.logsigmoid(match_log_odds(self.match_logits(posts, locations, top_idx)))
        by_tlc = Ranking(indices=top_idx, scores=top_tlc, tlc_logprob=top_tlc, tlm_logprob=tlm)
        return rerank(by_tlc, self.config.rerank.tlm_weight)

    # ------------------------------------------------------ inference conveniences
    @torch.no_grad()
    def embed_posts(self, posts: Sequence[Any], batch_size: int = 64) -> Tensor:
        """(B, D) post embeddings, computed in length-sorted batches, in input order."""
        return self._batched(
            posts,
            self._post_lengths(posts),
            batch_size,
            lambda chunk: self.encode_posts(chunk).embeddings,
        )

    @torch.no_grad()
    def embed_locations(self, locations: Sequence[Location], batch_size: int = 128) -> Tensor:
        """(N, D) location embeddings (template-averaged)."""
        return self._batched(
            locations,
            [len(loc.name) for loc in locations],
            batch_size,
            lambda chunk: self.encode_locations(chunk).embeddings,
        )

    @torch.no_grad()
    def match(
        self, posts: Sequence[Any], locations: Sequence[Location], candidates: Tensor | None = None
    ) -> Tensor:
        """P(match) for each post and each candidate (B, K); all locations if ``candidates``
        is None."""
        with eval_mode(self):
            enc_posts = self.encode_posts(posts)
            enc_locs = self.encode_locations(locations)
            if candidates is None:
                candidates = torch.arange(len(locations), device=self.device).expand(len(posts), -1)
            return torch.sigmoid(match_log_odds(self.match_logits(enc_posts, enc_locs, candidates)))

    @torch.no_grad()
    def encode_locations_batched(
        self, locations: Sequence[Location], batch_size: int = 256
    ) -> Encoded:
        """``encode_locations`` for a long list, in eval mode and without gradients."""
        return self._batched(
            locations, [len(loc.name) for loc in locations], batch_size, self.encode_locations
        )

    @torch.no_grad()
    def predict(
        self,
        posts: Sequence[Any],
        locations: Sequence[Location],
        k: int | None = None,
        batch_size: int = 64,
        encoded_locations: Encoded | None = None,
    ) -> Ranking:
        """Rank ``locations`` for every post (two-stage, see ``rank``). Pass
        ``encoded_locations`` (from ``encode_locations_batched``) to reuse them across calls."""
        locs = encoded_locations or self.encode_locations_batched(locations)
        return self._batched(
            posts,
            self._post_lengths(posts),
            batch_size,
            lambda chunk: self.rank(self.encode_posts(chunk), locs, k),
        )

    def _post_lengths(self, posts: Sequence[Any]) -> list[int]:
        return [len(t) for t in self.post_texts(posts)]

    def _batched(
        self,
        items: Sequence[Any],
        lengths: list[int],
        batch_size: int,
        fn: Callable[[list[Any]], T],
    ) -> T:
        """Run ``fn`` in eval mode on length-sorted batches (less padding) and return the
        concatenated result (a tensor, an ``Encoded`` or a ``Ranking``) in input order."""
        if not items:
            raise ValueError("nothing to encode: the list of posts or locations is empty")
        order = sorted(range(len(items)), key=lengths.__getitem__)
        with eval_mode(self):
            outputs = [
                fn([items[i] for i in order[s : s + batch_size]])
                for s in range(0, len(order), batch_size)
            ]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        if isinstance(outputs[0], Encoded):
            return cat_encoded(outputs).select(inverse)
        if isinstance(outputs[0], Ranking):
            columns = {
                name: torch.cat([getattr(o, name) for o in outputs])[inverse]
                for name in (f.name for f in fields(Ranking))
            }
            return Ranking(**columns)
        return torch.cat(outputs)[inverse]


def rerank(ranking: Ranking, weight: float) -> Ranking:
    """Order each row's candidates by (1 − w)·log p_TLC + w·log p_TLM; ties keep the order
    they come in (TLC's). Reranking a ranking made with w = 0 by w gives exactly what
    ``rank`` gives with w, so one ranking can be scored at several weights."""
    scores = (1 - weight) * ranking.tlc_logprob + weight * ranking.tlm_logprob
    order = scores.argsort(dim=1, descending=True, stable=True)
    return Ranking(
        indices=ranking.indices.gather(1, order),
        scores=scores.gather(1, order),
        tlc_logprob=ranking.tlc_logprob.gather(1, order),
        tlm_logprob=ranking.tlm_logprob.gather(1, order),
    )


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; the previous mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def cat_encoded(parts: list[Encoded]) -> Encoded:
    """Concatenate encoded batches, padding token states to the longest."""
    width = max(p.states.shape[1] for p in parts)

    def pad(x: Tensor) -> Tensor:
        return (
            F.pad(x, (0, 0, 0, width - x.shape[1]))
            if x.dim() == 3
            else F.pad(x, (0, width - x.shape[1]))
        )

    return Encoded(
        embeddings=torch.cat([p.embeddings for p in parts]),
        states=torch.cat([pad(p.states) for p in parts]),
        mask=torch.cat([pad(p.mask) for p in parts]),
        texts=[t for p in parts for t in p.texts],
    )
