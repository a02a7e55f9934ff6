"""How far any mix of a run's methods could go: the share of test posts that at least
one of the named methods geolocates right (an oracle that always picks the right one of
their answers), against one reference method, per seed and over all seeds.

It bounds what a combination of those methods (an ensemble, a gazetteer prior added to
ContrastGeo's scores) could reach on the same posts. A script over a `benchmark`
results.json (each row's `correct` string, one character a test post); no model runs.
From the repository root:
    python3 docs/benchmarks/catalogue-oracle/oracle.py \
        docs/benchmarks/nl-text-catalogue-k16-e5-small-3seeds/results.json gazetteer \
        contrastgeo contrastgeo,gazetteer contrastgeo,gazetteer,zero-shot+tfidf \
        > docs/benchmarks/catalogue-oracle/result.md
"""

import json
import sys
from collections import defaultdict


def main(results_path: str, reference: str, *method_sets: str) -> None:
    with open(results_path) as f:
        run = json.load(f)
    correct = defaultdict(dict)  # seed -> method -> "0101..."
    for row in run["results"]:
        if "correct" in row:
            correct[row["seed"]][row["method"]] = row["correct"]
    seeds = sorted(correct)
    every_method = ",".join(sorted(correct[seeds[0]]))
    seed_columns = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        run["command"],
        "",
        f"{len(seeds)} seeds; Acc@1 (%) of an oracle over each set of methods, "
        f"and its ratio to `{reference}` on the same posts",
        "",
        f"| methods | {seed_columns} | all seeds | × {reference} |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    for names in (*method_sets, every_method, reference):
        methods = names.split(",")
        hits = posts = reference_hits = 0
        cells = []
        for seed in seeds:
            answers = [correct[seed][m] for m in methods]
            right = sum(any(a[i] == "1" for a in answers) for i in range(len(answers[0])))
            cells.append(f"{100 * right / len(answers[0]):.2f}")
            hits, posts = hits + right, posts + len(answers[0])
            reference_hits += correct[seed][reference].count("1")
        lines.append(
            f"| {', '.join(methods)} | {' | '.join(cells)} | {100 * hits / posts:.2f} "
            f"| {hits / reference_hits:.2f} |"
        )
    print("\n".join(lines))  # noqa: T201 - the script's output is its table


if __name__ == "__main__":
    main(*sys.argv[1:])
