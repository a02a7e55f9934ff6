"""Paired Acc@1 gap between two (run, method, shot count) cells on the same test posts, for
pairs that `contrastgeo compare` does not make (two shot counts in two runs).

    PYTHONPATH=. .venv/bin/python docs/benchmarks/bcms-text-upper-reference-e5-small/pair.py \
        RUN_A METHOD_A SHOTS_A RUN_B METHOD_B SHOTS_B

Each RUN is a benchmark's --out folder; SHOTS a number or "all". Prints each cell's mean
Acc@1 over the seeds both have and A minus B with its paired bootstrap 95% interval
(`trainer.metrics.paired_bootstrap`, posts resampled within each seed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trainer.benchmark import by_seed, paired_diffs, per_post_correct
from trainer.compare import cell, load_results


def cell_of(run: str, method: str, shots: str) -> dict[int, np.ndarray]:
    k = shots if shots == "all" else int(shots)
    found = by_seed(per_post_correct(load_results(Path(run))), method, k)
    if not found:
        raise SystemExit(f"{run}: no {method} rows at {shots} shots")
    return found


def main(argv: list[str]) -> None:
    a, b = cell_of(*argv[:3]), cell_of(*argv[3:6])
    seeds = sorted(a.keys() & b.keys())
    for name, runs in (("A", a), ("B", b)):
        mean = 100 * np.mean([runs[s].mean() for s in seeds])
        print(f"{name} {' '.join(argv[:3] if name == 'A' else argv[3:6])}: {mean:.1f}%")  # noqa: T201
    print(f"A - B over seeds {seeds}: {cell(paired_diffs(a, b))}")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1:])
