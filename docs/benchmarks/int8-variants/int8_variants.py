"""Exploration (not a project command): which int8 variant stays closest to fp32?

Run: .venv/bin/python docs/benchmarks/int8-variants/int8_variants.py runs/int8/work 3000
(needs runs/us-16 from `contrastgeo fit`, see docs/serving.md; optional arguments after
the variants: another model folder, labeled file and its format, e.g.
`... "8-bit|first layer fp32" runs/nl-16-minilm ../shared/data/nl-tweets nl-tsv`).
Quantizes the fused fp32 encoder with parts kept in fp32 and compares each served int8
variant with served fp32 on the last 3,000 labeled posts of the us-south file (not held
out: 278 of them are the model's training posts, 123 its dev posts): Acc@1 (rerank on,
each variant with its own prototypes), its paired bootstrap interval, and the cosine of
post embeddings to fp32. An optional third argument picks variants by name ("a|b"). The
signed 8-bit variants can saturate on an x86 CPU without VNNI (docs/serving.md,
"Export"): read them with the CPU line the script prints first.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from benchmarks import cpu_description
from benchmarks.serving import labeled_posts
from model import ContrastGeo
from model.export import export_onnx, fuse, quantize_int8
from model.manifest import sha256, verify_export, write_manifest
from model.pretrained import ENCODERS, INT8_FIRST_LAYER, named_encoder
from model.prompts import load_locations
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel
from trainer.metrics import paired_bootstrap

MODEL = Path("runs/us-16")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"
FIRST_LAYER = (INT8_FIRST_LAYER,)
FFN_DOWN = ENCODERS["mpnet"].int8_keep_fp32  # the feed-forward down projections
VARIANTS = {  # name: quantize_int8's options; keep_fp32: the fused graph's nodes kept fp32
    # the first run (output.txt, where "8-bit" is named "int8 (today)"): 8-bit signed
    # weights, parts kept in fp32
    "8-bit": {},
    "ffn-down fp32": {"keep_fp32": FFN_DOWN},
    "embeddings fp32": {"keep_fp32": (r"[Ee]mbed",)},
    "last layer fp32": {"keep_fp32": (r"layer\.5/",)},
    "first layer fp32": {"keep_fp32": FIRST_LAYER},
    "ffn fp32": {"keep_fp32": (r"layer\.\d+/(intermediate|output)/dense/MatMul",)},
    "attention fp32": {"keep_fp32": (r"[Aa]ttention",)},
    # the second (output-weight-types.txt): what the weights' type and range cost
    "7-bit": {"reduce_range": True},
    "7-bit, first layer fp32": {"reduce_range": True, "keep_fp32": FIRST_LAYER},
    "8-bit unsigned": {"unsigned_weights": True},
    "8-bit unsigned, first layer fp32": {"unsigned_weights": True, "keep_fp32": FIRST_LAYER},
    # the third (2026-12-07, an mpnet model): its own list, with the first layer or without
    "ffn-down and first layer fp32": {"keep_fp32": FFN_DOWN + FIRST_LAYER},
}


def main(
    work: Path,
    n: int,
    wanted: str = "",
    model_dir: Path = MODEL,
    data: str = DATA,
    fmt: str = "twitter-jsonl",
) -> None:
    print(f"CPU: {cpu_description()}; model {model_dir}, data {data}")  # noqa: T201
    work.mkdir(parents=True, exist_ok=True)
    model = ContrastGeo.load(model_dir)
    locations = load_locations(model_dir / "locations.jsonl")
    posts, labels = labeled_posts(data, fmt, locations)
    posts, gold = posts[-n:], [locations[i].id for i in labels[-n:]]  # the last n
    export = work / "export"
    if not (export / "encoder.onnx").exists():
        # one int8 graph a variant replaces (no 8-bit VNNI graph a worker might pick instead)
        export_onnx(model, export, locations=locations, vnni_int8=False)
    # the graph the export quantizes: fused where the named encoder says so (not mpnet)
    backbone = model.post_encoder.backbone.config
    named = named_encoder(model.config.encoder.checkpoint)
    fusion = named.onnx_fusion if named else "bert"
    fused = work / "encoder.fused.onnx" if fusion else export / "encoder.onnx"
    if not fused.exists():
        heads, hidden = backbone.num_attention_heads, backbone.hidden_size
        assert fuse(export / "encoder.onnx", fused, fusion, heads, hidden)

    def served(folder: Path, precision: str):
        onnx_model = OnnxModel(folder, precision=precision, threads=2)
        index = EdgeIndex(work / f"index-{folder.name}-{precision}")
        index.set_alias(ALIAS, build_collection(index, onnx_model, locations))
        return onnx_model, index

    def correct(onnx_model, index) -> np.ndarray:
        predictor = Predictor(onnx_model, index, k=model.config.rerank.k, rerank=True)
        found = []
        for i in range(0, len(posts), 64):
            found += [p.location.location_id for p in predictor.predict(posts[i : i + 64])]
        return np.array([a == g for a, g in zip(found, gold, strict=True)], dtype=float)

    def embeddings(onnx_model) -> np.ndarray:
        return np.concatenate(
            [onnx_model.embed_posts(posts[i : i + 64]) for i in range(0, len(posts), 64)]
        )

    fp32_model, fp32_index = served(export, "fp32")
    fp32_correct, fp32_emb = correct(fp32_model, fp32_index), embeddings(fp32_model)
    print(f"fp32 Acc@1 {100 * fp32_correct.mean():.2f} on {len(posts)} posts")  # noqa: T201
    manifest = verify_export(export)  # each variant's copy names its own int8 graph
    names = [v for v in VARIANTS if not wanted or v in wanted.split("|")]
    for name in names:
        folder = work / re.sub(r"\W+", "-", name)
        folder.mkdir(exist_ok=True)
        for f in export.iterdir():
            skip = f.name in ("encoder.int8.onnx", "manifest.json")
            if not skip and not (folder / f.name).exists():
                (folder / f.name).symlink_to(f.resolve())
        int8 = folder / "encoder.int8.onnx"
        if not int8.exists():
            quantize_int8(fused, int8, **VARIANTS[name])
        files = {**manifest["files"], "encoder.int8.onnx": sha256(int8)}
        write_manifest(folder, {**manifest, "files": files})
        onnx_model, index = served(folder, "int8")
        right, emb = correct(onnx_model, index), embeddings(onnx_model)
        cos = (emb * fp32_emb).sum(1) / np.linalg.norm(emb, axis=1)
        cos /= np.linalg.norm(fp32_emb, axis=1)
        gap, low, high = paired_bootstrap([right - fp32_correct])
        size = int8.stat().st_size / 2**20
        print(  # noqa: T201
            f"{name:18s} Acc@1 {100 * right.mean():.2f}  minus fp32 {100 * gap:+.2f} "
            f"[{100 * low:+.2f}, {100 * high:+.2f}]  cos mean {cos.mean():.4f} "
            f"p1 {np.percentile(cos, 1):.4f} min {cos.min():.4f}  {size:.1f} MiB",
            flush=True,
        )
        index.close()
    fp32_index.close()


if __name__ == "__main__":
    work, n, *rest = sys.argv[1:]
    wanted = rest[0] if rest else ""
    others = (Path(rest[1]), rest[2], rest[3]) if len(rest) > 1 else ()
    main(Path(work), int(n), wanted, *others)
