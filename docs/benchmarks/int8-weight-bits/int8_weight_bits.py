"""Cosine of each named encoder's int8 embeddings to its fp32 PyTorch embeddings, with
8-bit and with 7-bit (reduce-range) weights, on 48 real posts (12 from each shared set).

A script, not a command (docs/serving.md, "Export"); deterministic (seeded, untrained
heads: the speed and the rounding do not depend on training), run from the repository
root:
    PYTHONPATH=. .venv/bin/python docs/benchmarks/int8-weight-bits/int8_weight_bits.py \
        > docs/benchmarks/int8-weight-bits/result.md
"""

import sys
import tempfile
from pathlib import Path

import structlog
import torch

from benchmarks import cpu_description
from model import ContrastGeo, FusionConfig
from model.export import export_onnx
from model.pretrained import ENCODERS, config_for
from stream.runtime import OnnxModel
from tests.integration.test_named_encoders import real_posts
from trainer.examples import load_example


def main() -> None:
    # the runtime's warning about 8-bit weights goes to stderr, the table alone to stdout
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    posts = [p for ps in real_posts(12).values() for p in ps]
    lines = [
        f"CPU: {cpu_description()}; {len(posts)} posts",
        "",
        "| encoder | weights | cosine to fp32, worst | mean |",
        "|---|---|---:|---:|",
    ]
    for name in ENCODERS:
        torch.manual_seed(0)
        model = ContrastGeo.from_config(config_for(name, fusion=FusionConfig(heads=2))).eval()
        expected = model.embed_posts(posts).numpy()
        for reduce_range in (False, True):
            folder = Path(tempfile.mkdtemp()) / "export"
            export_onnx(
                model, folder, reduce_range=reduce_range, locations=load_example().locations
            )
            int8 = OnnxModel(folder, precision="int8", batch_size=16)
            cosine = (int8.embed_posts(posts) * expected).sum(axis=1)
            bits = "7-bit" if reduce_range else "8-bit"
            lines.append(f"| {name} | {bits} | {cosine.min():.4f} | {cosine.mean():.4f} |")
    print("\n".join(lines))  # noqa: T201 - the script's output is its table


if __name__ == "__main__":
    main()
