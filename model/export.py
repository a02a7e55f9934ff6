"""ONNX export of a trained model: what the streaming workers run instead of PyTorch.

``export_onnx(model, folder)`` writes

    encoder.onnx        token ids + mask -> L2-normalized embedding (pooling and projection
                        inside the graph) and the last-layer token states
    encoder.int8.onnx   the same, int8 dynamic quantization (optional; per-channel weights,
                        7 bits by default: correct on every CPU), of the graph fused by
                        onnxruntime's transformer optimizer for the named encoders that say
                        so (``optimize=False``: of the plain graph); the nodes a named
                        encoder lists, and its first layer where it says so, stay fp32
    encoder.int8-vnni.onnx   the same with 8-bit weights, for workers whose CPU cannot
                        saturate them (``stream.runtime.int8_can_saturate``): about a point
                        of Acc@1 closer to fp32 than 7 bits (docs/serving.md, "Export")
    location_encoder*.onnx   only when post and location encoders are not shared
    matcher.onnx        the matching head over a post and K candidates -> match log-odds
                        (vector fusion: from embeddings; cross-attention: from token states)
    tokenizer/          the tokenizer, config.json (the model config), locations.jsonl
    manifest.json       model version, config hash, opset, inputs/outputs and a sha256 per file
                        (``model.manifest``, which the workers read without torch)

All batch, sequence and candidate axes are dynamic. Token-level fusion has no matcher graph:
it runs the whole language model once per (post, candidate) pair, i.e. K extra encoder
passes per post, so the service ranks token-fusion models by TLC alone (documented in
docs/serving.md) and vector fusion is the default.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model.contrastgeo import ContrastGeo, eval_mode
from model.encoders import TextEncoder
from model.fusion import match_log_odds
from model.manifest import VNNI_INT8_SUFFIX, checksums, write_manifest
from model.pretrained import INT8_FIRST_LAYER, named_encoder
from model.prompts import Location, save_locations

OPSET = 17


class EncoderGraph(nn.Module):
    def __init__(self, encoder: TextEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.encoder.token_states(input_ids, attention_mask)
        return self.encoder.embed(hidden, attention_mask), hidden[-1]


class VectorMatcherGraph(nn.Module):
    def __init__(self, model: ContrastGeo):
        super().__init__()
        self.fusion, self.head = model.fusion, model.matching_head

    def forward(self, post_embedding: Tensor, candidate_embeddings: Tensor) -> Tensor:
        return match_log_odds(self.head(self.fusion(post_embedding, candidate_embeddings)))


class CrossAttentionMatcherGraph(nn.Module):
    def __init__(self, model: ContrastGeo):
        super().__init__()
        self.fusion, self.head = model.fusion, model.matching_head

    def forward(
        self,
        post_states: Tensor,
        post_mask: Tensor,
        candidate_states: Tensor,
        candidate_mask: Tensor,
    ) -> Tensor:
        joint = self.fusion(post_states, post_mask, candidate_states, candidate_mask)
        return match_log_odds(self.head(joint))


def _export(module: nn.Module, args: tuple, path: Path, inputs, outputs, axes) -> None:
    # The exporter restores the wrapper's train/eval mode afterwards, recursively: a wrapper
    # left in train mode would switch the model's own modules (dropout) to training.
    torch.onnx.export(
        module.eval(),
        args,
        str(path),
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
    )


def _export_encoder(encoder: TextEncoder, path: Path) -> None:
    ids = torch.ones(2, 7, dtype=torch.long)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    # attention written out as matrix products (not SDPA), the pattern onnxruntime's
    # transformer optimizer fuses; what it computes is the same
    backbone = encoder.backbone
    previous = backbone.config._attn_implementation
    backbone.set_attn_implementation("eager")
    try:
        _export(
            EncoderGraph(encoder),
            (ids, mask),
            path,
            ["input_ids", "attention_mask"],
            ["embedding", "token_states"],
            {
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
                "token_states": {0: "batch", 1: "sequence"},
            },
        )
    finally:
        backbone.set_attn_implementation(previous)


def _export_matcher(model: ContrastGeo, path: Path) -> bool:
    strategy = model.config.fusion.strategy
    d, h = model.post_encoder.embedding_dim, model.post_encoder.hidden_size
    if strategy == "vector":
        _export(
            VectorMatcherGraph(model),
            (torch.randn(2, d), torch.randn(2, 3, d)),
            path,
            ["post_embedding", "candidate_embeddings"],
            ["match_log_odds"],
            {
                "post_embedding": {0: "batch"},
                "candidate_embeddings": {0: "batch", 1: "candidates"},
                "match_log_odds": {0: "batch", 1: "candidates"},
            },
        )
        return True
    if strategy == "cross-attention":
        _export(
            CrossAttentionMatcherGraph(model),
            (
                torch.randn(2, 5, h),
                torch.ones(2, 5, dtype=torch.long),
                torch.randn(2, 3, 4, h),
                torch.ones(2, 3, 4, dtype=torch.long),
            ),
            path,
            ["post_states", "post_mask", "candidate_states", "candidate_mask"],
            ["match_log_odds"],
            {
                "post_states": {0: "batch", 1: "sequence"},
                "post_mask": {0: "batch", 1: "sequence"},
                "candidate_states": {0: "batch", 1: "candidates", 2: "location_sequence"},
                "candidate_mask": {0: "batch", 1: "candidates", 2: "location_sequence"},
                "match_log_odds": {0: "batch", 1: "candidates"},
            },
        )
        return True
    return False  # token-level fusion: see the module doc


def fuse(source: Path, target: Path, model_type: str, heads: int, hidden: int) -> bool:
    """onnxruntime's transformer optimizer over an encoder graph: attention, embedding +
    LayerNorm, bias + GELU and skip + LayerNorm become single fused operators (CPU and
    CUDA kernels of onnxruntime). Quantizing the fused graph keeps attention fused (a
    quantized plain graph cannot be fused at load time). Returns whether attention was
    fused; the outputs are the plain graph's (``tests/model/test_export_fusion.py``)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source), model_type=model_type, num_heads=heads, hidden_size=hidden
    )
    optimized.save_model_to_file(str(target))
    return optimized.get_fused_operator_statistics().get("Attention", 0) > 0


def quantize_int8(
    source: Path,
    target: Path,
    per_channel: bool = True,
    reduce_range: bool = False,
    keep_fp32: Sequence[str] = (),
    unsigned_weights: bool = False,
):
    """Dynamic int8 quantization of the weights (MatMul/Gemm/Gather); activations are
    quantized per batch. Nodes whose names match a ``keep_fp32`` regular expression stay
    fp32 (a named encoder lists those int8 harms: ``model.pretrained``).
    ``unsigned_weights``: uint8 weights (u8 x u8 kernels) instead of int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [n.name for n in onnx.load(str(source), load_external_data=False).graph.node]
    excluded = [n for n in names if any(re.search(p, n) for p in keep_fp32)]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QUInt8 if unsigned_weights else QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=reduce_range,
        nodes_to_exclude=excluded,
        # fused operators have no ONNX type inference: their outputs are float
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _quantize_encoder(
    folder: Path,
    name: str,
    model: ContrastGeo,
    fusion: str | None,
    reduce_range: bool,
    vnni_int8: bool,
    keep_fp32: Sequence[str],
) -> None:
    """``<name>.int8.onnx`` from ``<name>.onnx``, fused first when ``fusion`` says how; with
    ``vnni_int8`` and 7-bit weights also ``<name>.int8-vnni.onnx`` with 8-bit weights. The
    nodes whose names match a ``keep_fp32`` pattern stay fp32."""
    plain = folder / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        source = plain
        if fusion:
            backbone = model.post_encoder.backbone.config
            fused = Path(scratch) / f"{name}.fused.onnx"
            heads, hidden = backbone.num_attention_heads, backbone.hidden_size
            if fuse(plain, fused, fusion, heads, hidden):
                source = fused
        graphs = {f"{name}.int8.onnx": reduce_range}
        if vnni_int8 and reduce_range:
            graphs[f"{name}.{VNNI_INT8_SUFFIX}"] = False
        for file, seven_bits in graphs.items():
            quantize_int8(source, folder / file, reduce_range=seven_bits, keep_fp32=keep_fp32)


def export_onnx(
    model: ContrastGeo,
    folder: str | Path,
    quantize: bool = True,
    reduce_range: bool = True,
    version: str | None = None,
    locations: Sequence[Location] | None = None,
    optimize: bool = True,
    vnni_int8: bool = True,
    int8_first_layer_fp32: bool = True,
) -> dict[str, Any]:
    """Write the graphs, tokenizer, config, the candidate ``locations`` (if given) and the
    manifest to ``folder`` (atomically: a temporary folder renamed into place). Returns the
    manifest. ``reduce_range``: int8 weights in 7 bits, correct on every x86 CPU; 8 bits
    (False) can saturate on one without VNNI (docs/serving.md, "Export"). ``vnni_int8``
    (with 7-bit weights): also an 8-bit graph, which workers on CPUs with VNNI serve.
    ``int8_first_layer_fp32=False``: the first layer in int8 even where the named encoder
    keeps it fp32, as every export before 2026-12-07 (``serving-bench``'s earlier paths)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with torch.no_grad(), eval_mode(model):
            _export_encoder(model.post_encoder, tmp / "encoder.onnx")
            if model.location_encoder is not None:
                _export_encoder(model.location_encoder, tmp / "location_encoder.onnx")
            has_matcher = _export_matcher(model, tmp / "matcher.onnx")
        named = named_encoder(model.config.encoder.checkpoint)
        if quantize:
            fusion = named.onnx_fusion if named and optimize else None
            keep_fp32 = named.int8_keep_fp32 if named else ()
            if named and named.int8_first_layer_fp32 and int8_first_layer_fp32:
                keep_fp32 = (*keep_fp32, INT8_FIRST_LAYER)
            for name in ("encoder", "location_encoder"):
                if (tmp / f"{name}.onnx").exists():
                    _quantize_encoder(tmp, name, model, fusion, reduce_range, vnni_int8, keep_fp32)
        model.tokenizer.save_pretrained(tmp / "tokenizer")
        (tmp / "config.json").write_text(model.config.to_json())
        if locations:
            save_locations(tmp / "locations.jsonl", list(locations))
        files = checksums(tmp)
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        inverse_temperature = float(model.inverse_temperature().detach())
        manifest = {
            # unique per trained weights: when it was exported + the encoder's checksum
            "model_version": version or f"{stamp}-{files['encoder.onnx'][:8]}",
            "config_hash": model.config.fingerprint(),
            "fusion": model.config.fusion.strategy,
            "matcher": has_matcher,
            "shared_encoder": model.location_encoder is None,
            "opset": OPSET,
            "embedding_dim": model.post_encoder.embedding_dim,
            "inverse_temperature": inverse_temperature,
            # the same value under its former name, for workers of earlier releases that
            # still run during a rolling upgrade
            "logit_scale": inverse_temperature,
            "rerank": model.config.rerank.model_dump(),
            # 7 or 8: a worker on an x86 CPU without VNNI does not pick 8-bit int8 itself
            **({"int8_weight_bits": 7 if reduce_range else 8} if quantize else {}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        write_manifest(tmp, manifest)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
