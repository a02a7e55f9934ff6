"""``contrastgeo benchmark``: ContrastGeo against the baselines on one labeled dataset.

Writes ``results.json``, ``results.md`` and ``acc_vs_shots.png`` to ``--out``. Two
protocols (``trainer/data/fewshot.py``): ``fewshot``, the paper's (the most frequent places,
k posts each), and ``catalogue`` (every place of the catalogue a candidate).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from contrastgeo.commands.data_args import (
    add_data_arguments,
    add_model_arguments,
    add_protocol_argument,
    model_and_train_config,
    shot_list,
    str_list,
    task_from_args,
)

METHOD_GROUPS = {
    "default": "contrastgeo + every baseline (catalogue protocol: + zero-shot, carmen, "
    "gazetteer, tfidf-lr, zero-shot+tfidf)",
    "baselines": "every baseline",
    "ablations": "contrastgeo and each of its variants",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_protocol_argument(parser)
    parser.add_argument(
        "--shots",
        type=shot_list,
        default=None,
        help="posts per place, comma-separated; 'all' = no cap, every training label "
        "(default 1,2,4,8,16; catalogue: 1,4,16,all)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument(
        "--methods",
        type=str_list,
        default=("default",),
        help="comma-separated method names or groups: "
        + "; ".join(f"{k} = {v}" for k, v in METHOD_GROUPS.items()),
    )
    parser.add_argument("--out", type=Path, default=None, help="default runs/benchmark/<name>")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in OUT/results.json (same data and settings; --seeds, "
        "--shots and --methods may add runs) and run only the missing ones; results.json "
        "is written after every run, so an interrupted benchmark resumes where it stopped",
    )


def expand_methods(names: tuple[str, ...], protocol: str = "fewshot") -> tuple[str, ...]:
    from trainer.methods import BASELINES, CATALOGUE_BASELINES, METHODS

    groups = {
        "default": ("contrastgeo", *(BASELINES if protocol == "fewshot" else CATALOGUE_BASELINES)),
        "baselines": BASELINES,
        "ablations": tuple(m for m in METHODS if m.startswith("contrastgeo")),
    }
    return tuple(dict.fromkeys(m for name in names for m in groups.get(name, (name,))))


def run(args: argparse.Namespace) -> int:
    from trainer.benchmark import (
        BenchmarkConfig,
        CannotResume,
        check_methods,
        run_benchmark,
        write_report,
    )
    from trainer.data.fewshot import DEFAULT_SHOTS

    methods = expand_methods(args.methods, args.protocol)
    check_methods(methods)
    shots = args.shots or DEFAULT_SHOTS[args.protocol]
    task = task_from_args(args, shots, args.protocol)
    # each training run shows its steps under the benchmark's bar of runs
    model, train = model_and_train_config(args, task.countries, progress=True)
    config = BenchmarkConfig(
        shots=shots, seeds=args.seeds, methods=methods, model=model, train=train
    )
    suffix = "" if args.protocol == "fewshot" else "-catalogue"
    out = args.out or Path("runs/benchmark") / f"{task.name}-{task.input}{suffix}"
    command = "contrastgeo " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    previous = None
    if args.resume:
        if (out / "results.json").is_file():
            previous = json.loads((out / "results.json").read_text())
        else:
            print(f"{out}/results.json not found: nothing to resume, running everything")

    def save(document: dict) -> None:
        out.mkdir(parents=True, exist_ok=True)
        partial = out / "results.json.partial"
        partial.write_text(json.dumps({**document, "command": command}, indent=1) + "\n")
        partial.replace(out / "results.json")

    try:
        results = run_benchmark(task, config, previous=previous, save=save)
    except CannotResume as error:
        raise SystemExit(f"benchmark --resume: {error}") from None
    for path in write_report(results, out, command):
        print(f"wrote {path}")
    print()
    print((out / "results.md").read_text())
    return 0
