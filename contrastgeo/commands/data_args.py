"""Command-line arguments shared by the commands that read a labeled dataset."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from model.pretrained import AUTO, ENCODERS

FORMATS = ("twitter-jsonl", "latlon-tsv", "nl-tsv", "jsonl", "csv")


DEFAULT_MIN_POPULATION = 5000


class TRAIN_DEFAULTS:  # TrainConfig's, without importing torch (a test ties them)
    steps = 100
    batch_size = 16
    lr = 5e-5
    head_lr = 1e-3


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def encoder_names(text: str) -> tuple[str, ...]:
    """Comma-separated named encoders (``model.pretrained.ENCODERS``), as an argparse type."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if unknown := sorted(set(names) - set(ENCODERS)):
        raise argparse.ArgumentTypeError(
            f"unknown encoder(s) {unknown}: expected some of {', '.join(ENCODERS)}"
        )
    return names


def shot_list(text: str) -> tuple[int | str, ...]:
    """``1,4,16,all``: positive integers, and "all" (every label of the training users)."""
    values = tuple(shot_value(x) for x in text.split(",") if x.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected shot counts, got {text!r}")
    return values


def shot_value(text: str) -> int | str:
    """A positive integer, or "all"."""
    text = text.strip()
    return "all" if text == "all" else int_list(text)[0]


def add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        choices=("fewshot", "catalogue"),
        default="fewshot",
        help="fewshot (the paper's: the most frequent places, k posts each; default) or "
        "catalogue (every place of the catalogue is a candidate, test = every post of the "
        "test users, k caps the training labels per place)",
    )


def str_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data", nargs="+", required=True, help="file(s), folder(s) or glob(s); plain or gzip"
    )
    group.add_argument("--format", choices=FORMATS, required=True, help="how the file is laid out")
    group.add_argument("--name", default="", help="dataset name in reports (default: from path)")
    group.add_argument(
        "--input",
        choices=("text", "text+meta"),
        default="text+meta",
        help="what the model reads: the text only, or text + profile location/description "
        "(default text+meta; the same as text for data without profiles)",
    )
    group.add_argument(
        "--countries",
        type=str_list,
        default=None,
        help="ISO codes of the catalogue's countries, e.g. NL,BE (default: inferred from "
        "the posts' coordinates and places)",
    )
    group.add_argument(
        "--min-population",
        type=int,
        default=None,
        help=f"catalogue places (default {DEFAULT_MIN_POPULATION})",
    )
    group.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue file from `contrastgeo catalogue` (replaces --countries and "
        "--min-population)",
    )
    group.add_argument(
        "--radius-km", type=float, default=25.0, help="snap radius for GPS labels (default 25)"
    )
    group.add_argument(
        "--min-posts", type=int, default=30, help="keep locations with >= N posts (default 30)"
    )
    group.add_argument(
        "--max-locations",
        type=int,
        default=30,
        help="keep the N most frequent locations (default 30, so that a full sweep fits "
        "in an hour on 2 CPU cores; 0 = all)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and training")
    group.add_argument(
        "--checkpoint",
        default=AUTO,
        help=f"pre-trained encoder: {AUTO} (default: by the catalogue's countries, "
        f"docs/encoders.md), {', '.join(ENCODERS)} or a local Hugging Face model folder",
    )
    group.add_argument("--fusion", choices=("vector", "cross-attention", "token"), default="vector")
    group.add_argument(
        "--steps",
        type=int,
        default=TRAIN_DEFAULTS.steps,
        help=f"optimizer steps, whatever the shot count (default {TRAIN_DEFAULTS.steps}); "
        "dev picks the best step, 0 included",
    )
    group.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS.batch_size)
    group.add_argument(
        "--lr",
        type=float,
        default=TRAIN_DEFAULTS.lr,
        help=f"peak learning rate of the language model (default {TRAIN_DEFAULTS.lr:g}; "
        f"the new modules train at {TRAIN_DEFAULTS.head_lr:g})",
    )
    group.add_argument(
        "--word-embeddings",
        choices=("auto", "frozen", "trained"),
        default="auto",
        help="the language model's word-embedding table: auto (default) = as the named "
        "encoder says (frozen for e5-small's 250k-token table, trained otherwise)",
    )
    group.add_argument(
        "--location-encoder",
        choices=("auto", "locked", "trained"),
        default="auto",
        help="locked: the locations keep a frozen copy of the pre-trained encoder and only "
        "the post side is trained; trained: one encoder for both, trained; auto (default): "
        "locked when fewer than half of the candidates have a training label (measured "
        "better and faster over a catalogue, worse among 30 labeled cities: "
        "docs/experiments.md)",
    )


def model_and_train_config(args: argparse.Namespace, countries: Sequence[str] = (), **train):
    """The model and training configs the arguments ask for; ``--checkpoint auto`` picks
    the encoder by ``countries`` (the catalogue's)."""
    from model import FusionConfig
    from model.pretrained import config_for
    from trainer.train import TrainConfig

    checkpoint = chosen_checkpoint(args.checkpoint, countries)
    model = config_for(checkpoint, fusion=FusionConfig(strategy=args.fusion))
    return model, TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        location_encoder=args.location_encoder,
        word_embeddings=args.word_embeddings,
        **train,
    )


def chosen_checkpoint(checkpoint: str, countries: Sequence[str]) -> str:
    """``checkpoint`` itself, or for ``auto`` the named encoder for the countries' first
    languages (``model.pretrained.default_encoder``), said on stdout."""
    from model.pretrained import default_encoder
    from trainer.data.catalogue import first_language

    if checkpoint != AUTO:
        return checkpoint
    languages = [first_language(c) for c in countries]
    try:
        chosen = default_encoder(languages)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    spoken = ", ".join(f"{c} {lang or '?'}" for c, lang in zip(countries, languages, strict=True))
    print(f"encoder: {chosen} (--checkpoint auto; the catalogue's countries: {spoken})")
    return chosen


def catalogue_from_args(args: argparse.Namespace):
    """The ``--catalogue`` file's catalogue, or None (then ``prepare_task`` builds one from
    ``--countries`` and ``--min-population``)."""
    if args.catalogue is None:
        return None
    if args.countries or args.min_population is not None:
        raise SystemExit(
            "--catalogue replaces --countries and --min-population: pass one or the others"
        )
    return read_catalogue(args.catalogue)


def read_catalogue(path: Path):
    """``load_catalogue``, a bad file ending the command with its error."""
    from trainer.data.catalogue import load_catalogue

    try:
        return load_catalogue(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def task_from_args(
    args: argparse.Namespace, shots: tuple[int | str, ...], protocol: str = "fewshot"
):
    from trainer.data.fewshot import FewShotConfig
    from trainer.task import prepare_task

    try:
        fewshot = FewShotConfig(
            shots=shots,
            min_posts=args.min_posts,
            max_locations=args.max_locations or None,
            protocol=protocol,
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return prepare_task(
        args.data,
        args.format,
        input=args.input,
        countries=args.countries,
        min_population=args.min_population or DEFAULT_MIN_POPULATION,
        catalogue=catalogue_from_args(args),
        radius_km=args.radius_km,
        fewshot=fewshot,
        name=args.name,
    )
