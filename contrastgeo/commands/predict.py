"""``contrastgeo predict``: geolocate posts with the served model (ONNX + index + rerank).

Prints one JSON object per post: the location (or null when abstained), its score, the
top-k candidates with their TLC and TLM probabilities, and the model version.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", help="post text(s)")
    parser.add_argument("--user-location", default="", help="the author's profile location")
    parser.add_argument("--user-description", default="", help="the author's profile bio")
    parser.add_argument("--top", type=int, default=3, help="candidates to print (default 3)")


def run(args: argparse.Namespace) -> int:
    from model.prompts import PostFields
    from stream.predictor import Predictor
    from stream.settings import WorkerSettings

    settings = WorkerSettings()
    posts = [PostFields(t, args.user_location, args.user_description) for t in args.text]
    with settings.open_index() as index:
        model = settings.load_model(settings.version_in_service(index))
        predictor = Predictor(
            model,
            index,
            settings.index_alias,
            k=settings.top_k,
            rerank=settings.rerank,
            abstain_below=settings.abstain_below,
        )
        predictions = predictor.predict(posts)
    for text, prediction in zip(args.text, predictions, strict=True):
        out = dataclasses.asdict(prediction)
        out["candidates"] = out["candidates"][: args.top]
        print(json.dumps({"text": text, **out}, ensure_ascii=False))
    return 0
