"""``contrastgeo example``: the few-shot model end to end on the bundled example.

Loads the pre-trained encoder, scores the example's test posts zero-shot (prompt prototypes
only), trains ContrastGeo on the 4-shot support set (TLC + TLM with hard negatives), scores
the test posts again and prints each prediction with its top candidates.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fusion",
        choices=["vector", "cross-attention", "token"],
        default="vector",
        help="matching-head fusion strategy (default vector)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo/model"),
        help="where the trained model is saved (default runs/demo/model)",
    )


def run(args: argparse.Namespace) -> int:
    train_example(args.out, args.steps, args.seed, args.fusion)
    return 0


def train_example(
    out: Path, steps: int = 24, seed: int = 0, fusion: str = "vector", verbose: bool = True
) -> None:
    """Train on the example's support set, print the test predictions (``verbose``) and save
    the model with its ``locations.jsonl`` to ``out``."""
    import torch

    from model import ContrastGeo, ContrastGeoConfig, FusionConfig
    from model.prompts import save_locations
    from trainer.examples import load_example
    from trainer.train import TrainConfig, fit

    torch.manual_seed(seed)
    data = load_example()
    say = print if verbose else (lambda *a, **k: None)
    say(
        f"Example: {len(data.locations)} cities, {len(data.train)} support posts "
        f"({len(data.train) // len(data.locations)} per city), {len(data.test)} test posts."
    )
    config = ContrastGeoConfig(fusion=FusionConfig(strategy=fusion))
    model = ContrastGeo.from_config(config)
    posts = [ex.post for ex in data.test]
    gold = torch.tensor([ex.location for ex in data.test])

    # Zero-shot = TLC alone: nearest prompt prototype, before any training.
    similarity = model.embed_posts(posts) @ model.embed_locations(data.locations).T
    zero_acc = float((similarity.argmax(dim=1) == gold).float().mean())
    say(f"Zero-shot (nearest location prompt, no training): Acc@1 = {zero_acc:.0%}")

    result = fit(
        model,
        data.train,
        data.locations,
        TrainConfig(steps=steps, batch_size=16, seed=seed, progress=verbose),
    )
    ranking = model.predict(posts, data.locations)
    acc = float((ranking.indices[:, 0] == gold).float().mean())
    say(f"\nContrastGeo after {steps} steps ({result.seconds:.0f} s): Acc@1 = {acc:.0%}\n")
    for i, post in enumerate(posts):
        top = ranking.indices[i].tolist()
        best = data.locations[top[0]]
        mark = "ok " if top[0] == gold[i] else "MISS"
        where = f" [profile: {post.user_location}]" if post.user_location else ""
        say(f"{mark} {post.text[:60]!r}{where}")
        alts = ", ".join(
            f"{data.locations[j].name} {float(s):.2f}"
            for j, s in zip(top[1:3], ranking.scores[i, 1:3].exp(), strict=True)
        )
        say(
            f"     -> {best.name}, {best.admin} ({best.lat:.2f}, {best.lon:.2f}) "
            f"score {float(ranking.scores[i, 0].exp()):.2f}   next: {alts}"
        )
    model.save(out)
    save_locations(out / "locations.jsonl", data.locations)
    say(f"\nSaved the trained model to {out}")
