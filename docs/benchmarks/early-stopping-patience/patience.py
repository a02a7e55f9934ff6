"""Offline: what a patience of 2 dev evaluations (the default is 3) would have done to the
ContrastGeo runs recorded under docs/benchmarks/, read from their dev curves.

Training is deterministic up to the step that stops it, so a run whose selected step is
unchanged gives the same answers with fewer steps. Prints, per results folder, the runs
with an evaluation every 25 steps, how many would select another step, and the optimizer
steps run with patience 3 and with 2.

    python docs/benchmarks/early-stopping-patience/patience.py
"""

import json
import sys
from pathlib import Path


def select(curve: list[dict], patience: int) -> tuple[int, int]:
    """(selected step, last step run) under early stopping with ``patience``."""
    best, best_step, stale, last = None, 0, 0, 0
    for evaluation in curve:
        last = evaluation["step"]
        if best is None or evaluation["dev"] > best:
            best, best_step, stale = evaluation["dev"], evaluation["step"], 0
        else:
            stale += 1
            if stale >= patience:
                break
    return best_step, last


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.glob("*/results.json")):
        runs = changed = steps3 = steps2 = 0
        for row in json.loads(path.read_text())["results"]:
            curve = row.get("dev_curve") or []
            if row["method"] != "contrastgeo" or len(curve) < 2 or curve[1]["step"] != 25:
                continue
            (pick3, last3), (pick2, last2) = select(curve, 3), select(curve, 2)
            assert pick3 == row["best_step"], (path, row["seed"], row["shots"])
            runs, changed = runs + 1, changed + (pick2 != pick3)
            steps3, steps2 = steps3 + last3, steps2 + last2
        if runs:
            sys.stdout.write(
                f"{path.parent.name:50s} runs {runs:3d}  selection changed {changed}  "
                f"steps {steps3} -> {steps2} ({steps2 / steps3:.2f})\n"
            )


if __name__ == "__main__":
    main()
