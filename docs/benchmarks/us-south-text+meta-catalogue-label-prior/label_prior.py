"""Offline check (not a benchmark method): would a label-count prior help ContrastGeo?

Fits ContrastGeo as the catalogue benchmark does (us-south, text+meta; seed and k from the
command line), then scores every place by its TLC logit + beta * log(1 + n), n = the
place's training labels at that k, for the trained model (cg) and the untrained one (zs).
Writes dev and test Acc@1, MRR and Acc@1 on posts whose place has no label (b0), and the
Acc@1 when the prior only reorders the cosine top R (R10, R50), as an index query would.

Run from the repository root: ``.venv/bin/python <this file> SEED K,K...``. The logs
beside it are its output for ``0 16,1,all`` (an earlier version of it: a finer beta grid,
no R columns) and ``1 16,all`` (stopped before seed 1's zero-shot rows at all labels), by
earlier versions of this file; ``seed1-k16-this-script.log`` is this file's ``1 16``, the
same numbers as seed 1's k = 16 rows.
"""

import sys
import time

import numpy as np
import torch

sys.path.insert(0, ".")

from contrastgeo.cli import build_parser
from contrastgeo.commands.data_args import model_and_train_config, task_from_args
from trainer.methods import FrozenEncoder, Run, trained_contrastgeo

DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"
BETAS = (0.0, 0.5, 1.0, 2.0)


def say(*parts) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def scores(logits, gold, counts, beta) -> str:
    s = logits + beta * np.log1p(counts)[None, :]
    rank = (s > s[np.arange(len(gold)), gold][:, None]).sum(1)
    top = np.argsort(-logits, 1)
    cells = []
    for r in (10, 50):  # the prior applied to the cosine top r only
        pool = top[:, :r]
        pick = pool[np.arange(len(gold)), np.take_along_axis(s, pool, 1).argmax(1)]
        cells.append(f"R{r} {(pick == gold).mean():.3f}")
    unlabeled = counts[gold] == 0
    cells.append(
        f"acc {(rank == 0).mean():.3f} mrr {(1 / (rank + 1)).mean():.3f} "
        f"b0 {(rank == 0)[unlabeled].mean():.3f} (n0={unlabeled.sum()})"
    )
    return " | ".join(cells)


def main(seed: int, shots_list: list) -> None:
    argv = ["benchmark", "--protocol", "catalogue", "--data", DATA, "--format", "twitter-jsonl"]
    argv += ["--countries", "US", "--input", "text+meta"]
    args = build_parser().parse_args(argv)
    task = task_from_args(args, tuple(shots_list), "catalogue")
    model_cfg, train_cfg = model_and_train_config(args, task.countries, progress=False)
    model_cfg = model_cfg.model_copy(update={"prompts": task.prompts})
    frozen = FrozenEncoder(model_cfg)
    split = task.split(seed)
    for shots in shots_list:
        torch.manual_seed(seed)
        train_cfg_seed = train_cfg.model_copy(update={"seed": seed})
        run = Run(split, shots, seed, model_cfg, train_cfg_seed, frozen, {})
        start = time.time()
        model, result = trained_contrastgeo(run)
        say("fit", shots, time.time() - start, result.best_step, result.alpha)
        counts = np.bincount(split.gold(split.shots(shots)), minlength=len(split.locations))
        trained = run.frozen.memo.encoded(model, split.locations).embeddings
        for name, m, places in (
            ("cg", model, trained),
            ("zs", frozen.model, frozen.locations(split)),
        ):
            parts = {}
            for part, records in (("dev", split.dev), ("test", split.test)):
                posts = m.embed_posts([split.task.records[i].post for i in records])
                logits = (posts @ places.T * m.inverse_temperature()).detach().numpy()
                parts[part] = (logits, split.gold(records))
            for beta in BETAS:
                row = [f"{p} " + scores(*parts[p], counts, beta) for p in ("dev", "test")]
                say(shots, name, beta, " | ".join(row))


if __name__ == "__main__":
    main(int(sys.argv[1]), [k if k == "all" else int(k) for k in sys.argv[2].split(",")])
