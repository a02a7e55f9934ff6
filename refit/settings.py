"""The refit job's settings (``contrastgeo refit``, the CronJob): the shared service
settings (model store, index, Kafka; ``stream.settings.ServiceSettings``) plus what a
refit decides, from the same ``CONTRASTGEO_*`` environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from stream.settings import ServiceSettings


class RefitSettings(ServiceSettings):
    """The refit job's settings: the service's (model store, index, Kafka) plus these, from
    the same ``CONTRASTGEO_*`` environment."""

    label_store: Path = Field(Path("runs/labels/labels.sqlite"), description="SQLite file.")
    refit_group_id: str = Field("contrastgeo-refit", description="Consumer group of the job.")
    refit_catalogue: Path | None = Field(
        None,
        description="Catalogue file (`contrastgeo catalogue`); replaces countries and "
        "min population.",
    )
    refit_countries: tuple[str, ...] = Field((), description="Catalogue countries (empty = all).")
    refit_min_population: int = Field(5000, ge=500)
    refit_radius_km: float = Field(25.0, gt=0)
    refit_sparse_below: int = Field(16, ge=1, description="Fewer stored labels = sparse.")
    refit_min_labels: int = Field(2, ge=2, description="Labels a location needs to be refit.")
    refit_max_shots: int = Field(16, ge=1, description="Training posts per refit location.")
    refit_holdout: float = Field(0.25, gt=0, lt=1, description="Share of users held out.")
    refit_replay_per_location: int = Field(2, ge=0)
    refit_steps: int = Field(100, ge=1, description="Optimizer steps of a refit.")
    refit_batch_size: int = Field(32, ge=1)
    refit_max_overall_drop: float = Field(0.0, ge=0, le=1)
    refit_min_gain: float = Field(0.01, ge=0, le=1)
    # The labels come from public posts: anyone can write them. These bound what one
    # account, or many fabricated ones, can buy (docs/operations.md, "The gate").
    refit_max_labels_per_user: int = Field(
        2,
        ge=1,
        description="Labels one user gives one place, at most, in training and in the gate "
        "(posts without a user id count as one user).",
    )
    refit_gate_max_posts: int = Field(
        50, ge=1, description="Held-out posts of one place, at most, in the gate."
    )
    refit_gate_min_posts: int = Field(
        5, ge=1, description="Held-out posts a refit place needs before its gain counts."
    )
    refit_gate_min_users: int = Field(
        3, ge=1, description="Distinct held-out users a refit place needs before it counts."
    )
    refit_trusted_eval: Path | None = Field(
        None,
        description="A labeled file the operators trust (not from the stream), in "
        "refit_trusted_format: the candidate must not lose Acc@1 on it.",
    )
    refit_trusted_format: str = Field("twitter-jsonl", description="Its reader format.")
    refit_trusted_max_drop: float = Field(0.0, ge=0, le=1)
    refit_announce: bool = Field(True, description="Publish ModelUpdated after a promotion.")
    # What the job keeps on its volume, so that it does not grow without bound
    refit_label_window_days: float = Field(
        90.0, gt=0, description="Labels stored longer ago than this are deleted before a run."
    )
    refit_keep_versions: int = Field(
        5,
        ge=2,
        description="Model versions (and their index collections) kept: the newest N and "
        "the served one; older ones are deleted after each run.",
    )
