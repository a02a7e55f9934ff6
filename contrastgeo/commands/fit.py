"""``contrastgeo fit``: train one ContrastGeo model on a labeled file and save it.

The few-shot protocol draws ``--shots`` posts per location (user-disjoint where the data has
users); dev posts drive early stopping and the held-out test posts are scored. With
``--protocol catalogue`` every place of the catalogue is a candidate and ``--shots`` caps
the training labels per place (``all``: every label of the training users). The model
folder gets ``locations.jsonl`` (its candidate locations: with the catalogue protocol the
whole catalogue, which ``export`` and ``index`` then serve) and ``metrics.json``, whose
``dev_calibration`` table is computed on the score the workers serve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrastgeo.commands.data_args import (
    add_data_arguments,
    add_model_arguments,
    add_protocol_argument,
    model_and_train_config,
    shot_value,
    task_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_protocol_argument(parser)
    parser.add_argument(
        "--shots",
        type=shot_value,
        default=16,
        help="training posts per location (default 16); 'all': every label of the training users",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")


def run(args: argparse.Namespace) -> int:
    from contrastgeo.calibration import served_calibration
    from model import ContrastGeo
    from model.prompts import save_locations
    from trainer.metrics import geolocation_metrics
    from trainer.train import fit

    task = task_from_args(args, (args.shots,), args.protocol)
    model_config, train_config = model_and_train_config(args, task.countries, seed=args.seed)
    split = task.split(args.seed)
    model = ContrastGeo.from_config(model_config.model_copy(update={"prompts": task.prompts}))
    print(
        f"{task.name} ({task.input}): {len(split.locations)} locations, "
        f"{len(split.shots(args.shots))} training posts, {len(split.dev)} dev, "
        f"{len(split.test)} test"
    )
    result = fit(
        model,
        split.examples(split.shots(args.shots)),
        split.locations,
        train_config,
        dev=split.examples(split.dev),
    )
    ranking = model.predict([task.records[i].post for i in split.test], split.locations)
    metrics = geolocation_metrics(
        ranking.indices.numpy(),
        split.gold(split.test),
        split.lat,
        split.lon,
        ranking.scores[:, 0].exp().numpy(),
    )
    # the abstention table on the workers' own score (exported graphs, top-k softmax)
    calibration = served_calibration(
        model,
        split.locations,
        [task.records[i].post for i in split.dev],
        split.gold(split.dev),
    )
    model.save(args.out)
    save_locations(args.out / "locations.jsonl", split.locations)
    summary = {
        "dataset": task.name,
        "input": task.input,
        "protocol": args.protocol,
        "shots": args.shots,
        "seed": args.seed,
        "train_seconds": result.seconds,
        # what dev chose: the step (0 = untrained), WiSE-FT α, the rerank weight served
        "best_step": result.best_step,
        "alpha": result.alpha,
        "rerank_weight": model.config.rerank.tlm_weight,
        "dev_curve": result.history,
        "test": metrics,
        # choose CONTRASTGEO_ABSTAIN_BELOW from this: accuracy at each coverage on dev, on
        # the score a worker serves (contrastgeo/calibration.py)
        "dev_calibration": calibration,
    }
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"trained in {result.seconds:.0f} s; test Acc@1 {metrics['acc@1']:.1%}, "
        f"Acc@161km {metrics['acc@161km']:.1%}; saved to {args.out}"
    )
    print("dev coverage vs accuracy (choose CONTRASTGEO_ABSTAIN_BELOW from it):")
    for row in calibration:
        print(
            f"  answer {row['coverage']:.0%} of posts: Acc@1 {row['accuracy']:.1%} "
            f"(score >= {row['threshold']:.3f})"
        )
    return 0
