"""``contrastgeo demo``: the few-shot model end to end on the bundled example.

Loads the pre-trained encoder, scores the example's test posts zero-shot (prompt prototypes
only), trains ContrastGeo on the 4-shot support set (TLC + TLM with hard negatives), scores
the test posts again and prints each prediction with its top candidates.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
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
    import torch

    from model import ContrastGeo, ContrastGeoConfig, FusionConfig
    from model.prompts import save_locations
    from trainer.examples import load_example
    from trainer.train import TrainConfig, fit

    torch.manual_seed(args.seed)
    data = load_example()
    print(
        f"Example: {len(data.locations)} cities, {len(data.train)} support posts "
        f"({len(data.train) // len(data.locations)} per city), {len(data.test)} test posts."
    )
    config = ContrastGeoConfig(fusion=FusionConfig(strategy=args.fusion))
    model = ContrastGeo.from_config(config)
    posts = [ex.post for ex in data.test]
    gold = torch.tensor([ex.location for ex in data.test])

    # Zero-shot = TLC alone: nearest prompt prototype, before any training.
    similarity = model.embed_posts(posts) @ model.embed_locations(data.locations).T
    zero_acc = float((similarity.argmax(dim=1) == gold).float().mean())
    print(f"Zero-shot (nearest location prompt, no training): Acc@1 = {zero_acc:.0%}")

    result = fit(
        model,
        data.train,
        data.locations,
        TrainConfig(epochs=args.epochs, batch_size=16, seed=args.seed),
    )
    ranking = model.predict(posts, data.locations)
    acc = float((ranking.indices[:, 0] == gold).float().mean())
    print(f"\nContrastGeo after {args.epochs} epochs ({result.seconds:.0f} s): Acc@1 = {acc:.0%}\n")
    for i, post in enumerate(posts):
        top = ranking.indices[i].tolist()
        best = data.locations[top[0]]
        mark = "ok " if top[0] == gold[i] else "MISS"
        where = f" [profile: {post.user_location}]" if post.user_location else ""
        print(f"{mark} {post.text[:60]!r}{where}")
        alts = ", ".join(
            f"{data.locations[j].name} {float(s):.2f}"
            for j, s in zip(top[1:3], ranking.scores[i, 1:3].exp(), strict=True)
        )
        print(
            f"     -> {best.name}, {best.admin} ({best.lat:.2f}, {best.lon:.2f}) "
            f"score {float(ranking.scores[i, 0].exp()):.2f}   next: {alts}"
        )
    model.save(args.out)
    save_locations(args.out / "locations.jsonl", data.locations)
    print(f"\nSaved the trained model to {args.out}")
    return 0
