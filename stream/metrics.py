"""Prometheus metrics of one worker (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Each worker (and each test) has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.posts_in = Counter("contrastgeo_posts_in", "Input messages read", registry=r)
        self.posts_out = Counter(
            "contrastgeo_posts_out", "Geotagged events published", ["source"], registry=r
        )
        self.labeled = Counter("contrastgeo_labeled_posts", "Labeled posts published", registry=r)
        self.dead_letters = Counter(
            "contrastgeo_dead_letters", "Inputs dead-lettered", ["reason"], registry=r
        )
        self.skipped = Counter(
            "contrastgeo_skipped", "Stream control notices skipped", ["kind"], registry=r
        )
        self.abstentions = Counter(
            "contrastgeo_abstentions", "Predictions below the abstain threshold", registry=r
        )
        self.retries = Counter(
            "contrastgeo_predict_retries", "Failed predictions retried", registry=r
        )
        self.batch_failures = Counter(
            "contrastgeo_batch_failures",
            "Batches whose outputs could not be made or delivered (retried)",
            registry=r,
        )
        self.ready = Gauge(
            "contrastgeo_ready", "1 when the worker serves a model and batches succeed", registry=r
        )
        self.reload_failures = Counter(
            "contrastgeo_model_reload_failures", "Model versions refused", registry=r
        )
        self.batch_seconds = Histogram(
            "contrastgeo_batch_seconds",
            "Time to process one batch, read to outputs delivered",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_size = Histogram(
            "contrastgeo_batch_posts",
            "Inputs per batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.model_version = Gauge(
            "contrastgeo_model_info", "The model version served (value 1)", ["version"], registry=r
        )

    def set_model_version(self, version: str) -> None:
        self.model_version.clear()
        self.model_version.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
