"""Benchmarks and the local service they run on, one module per command:

``serving`` (``contrastgeo serving-bench``: PyTorch vs ONNX fp32/int8, and posts/s as the
index grows to 50,000 places), ``stream`` (``stream-bench``: end-to-end throughput through
the broker), ``soak`` (``soak``),
``refit`` (``refit-bench``), ``training`` (``training-bench``: a training step as the
catalogue grows), ``footprint`` (``footprint-bench``: a worker's memory, start
time and installed size); ``local`` starts worker subprocesses and throwaway local services
(also for the demo and the tests). The model benchmark (``contrastgeo benchmark``) is
``trainer.benchmark``: it compares training methods, not the service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out: Path, name: str, results: dict[str, Any], markdown: str = "") -> None:
    """``out/<name>.json`` (the results) and, when given, ``out/<name>.md`` (their table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    if markdown:
        (out / f"{name}.md").write_text(markdown)


SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


def cpu_description() -> str:
    """The CPU a speed figure was measured on: model, the cores this process may use and
    the instruction-set flags that change the speed of the encoder's kernels (machines
    differ between runs: every speed result says which it had)."""
    import os
    import platform

    from stream.runtime import cpu_info

    info = cpu_info()
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    have = [f for f in SPEED_FLAGS if f in flags] or ["none of " + ", ".join(SPEED_FLAGS)]
    return f"{model}, {len(os.sched_getaffinity(0))} cores, flags: {' '.join(have)}"
