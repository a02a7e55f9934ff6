"""The service's settings, read from ``CONTRASTGEO_*`` environment variables (or a ``.env``
file); the CLI's flags override some of them.

``ServiceSettings`` is what every process of the service shares: the model store, the
vector index, how a model runs, and the Kafka cluster with its topics. Each process has
one Settings class on that base: ``WorkerSettings`` here (batching, input rules, retries,
the HTTP endpoints), ``refit.settings.RefitSettings`` for the refit job.

Every field is an environment variable: ``CONTRASTGEO_`` + the field name in capitals
(``broker`` -> ``CONTRASTGEO_BROKER``). The Helm chart maps its values onto these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.manifest import checked_name

# The producer's largest request (faust's producer_max_request_size, set to this): no one
# record may be larger, so every output is checked against ``max_output_bytes`` below it.
MAX_REQUEST_BYTES = 1_000_000


class ServiceSettings(BaseSettings):
    """Model store, index, inference and Kafka: shared by the worker and the refit job."""

    model_config = SettingsConfigDict(env_prefix="CONTRASTGEO_", env_file=".env", extra="ignore")

    # --- model store: one folder per exported model version (``contrastgeo export``)
    model_store: Path = Field(Path("runs/models"), description="Folder of exported models.")
    # --- vector index: a Qdrant server when qdrant_url is set, else Qdrant's embedded engine
    qdrant_url: str | None = Field(None, description="Qdrant server URL (production).")
    qdrant_api_key: SecretStr | None = Field(None, description="Qdrant API key.")
    index_path: Path = Field(Path("runs/index"), description="Embedded index folder.")
    index_alias: str = Field("locations", description="Alias of the collection served.")
    # --- inference
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "int8"] = "auto"
    threads: int = Field(
        0,
        ge=0,
        description="onnxruntime intra-op threads (0 = the cores given to the process: its "
        "CPU affinity, or the container's CPU limit when lower).",
    )
    batch_size: int = Field(
        0,
        ge=0,
        description="Posts per encoder run: a taken batch is length-sorted and encoded in runs "
        "of this many, each padded to its own longest (0 = 8 on CPU, 64 on CUDA).",
    )
    post_max_length: int = Field(
        0,
        ge=0,
        description="Tokens a post is fitted into, cutting its description first, then its "
        "text, never its profile location (0 = the length the model was trained with, 128 by "
        "default; at 64 the predictor ran 1.12x faster on us-south posts, docs/serving.md).",
    )

    # --- Kafka
    broker: str = Field(
        "kafka://127.0.0.1:9092", description="Bootstrap servers, comma-separated URLs."
    )
    input_topic: str = "posts"
    geotagged_topic: str = "posts.geotagged"
    labeled_topic: str = "posts.labeled"
    dead_letter_topic: str = "posts.dead-letter"
    model_updates_topic: str = "models.updated"
    topic_partitions: int = Field(
        4, ge=1, description="Partitions of topics the service creates (>= worker replicas)."
    )
    topic_replication_factor: int = Field(1, ge=1, description="For topics the service creates.")
    session_timeout_s: float = Field(10.0, gt=0, description="Kafka consumer session timeout.")
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rebalance_timeout_s: float = Field(10.0, gt=0)
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=30_000,
        description="How long the broker may hold a consumer's fetch before answering it "
        "(every consumer of the service, the workers' included). A broker that answers a "
        "fetch only when this has passed (tansu does) adds up to this much to each hop; "
        "faust's own default is 1,500 ms.",
    )
    # TLS / SASL for a production cluster
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(None, description="CA bundle for TLS (default: system).")

    log_level: str = "INFO"

    @field_validator("broker")
    @classmethod
    def _kafka_urls(cls, value: str) -> str:
        for url in value.split(","):
            if "://" not in url.strip():
                raise ValueError(f"broker URLs look like kafka://host:port, not {url!r}")
        return value

    @model_validator(mode="after")
    def _sasl_credentials(self) -> ServiceSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_username and "
                "sasl_password (CONTRASTGEO_SASL_USERNAME / CONTRASTGEO_SASL_PASSWORD)"
            )
        if len(set(self.topics())) != len(self.topics()):
            raise ValueError(f"topic names must differ: {self.topics()}")
        return self

    # ------------------------------------------------------------------ derived
    def topics(self) -> list[str]:
        return [
            self.input_topic,
            self.geotagged_topic,
            self.labeled_topic,
            self.dead_letter_topic,
            self.model_updates_topic,
        ]

    def bootstrap_servers(self) -> list[str]:
        """``kafka://host:port,...`` -> ``["host:port", ...]`` for aiokafka."""
        return [url.strip().split("://", 1)[1] for url in self.broker.split(",")]

    def ssl_context(self) -> Any:
        """The TLS context for ``ssl_cafile`` (the system's CAs when unset); faust and
        ``stream.kafka`` use it."""
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)

    def open_index(self):
        from stream.index import open_index

        key = self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None
        return open_index(self.qdrant_url, key, self.index_path)

    def model_folder(self, version: str) -> Path:
        return self.model_store / checked_name(version)

    def load_model(self, version: str):
        from stream.runtime import OnnxModel

        return OnnxModel(
            self.model_folder(version),
            self.precision,
            self.device,
            self.threads,
            self.batch_size,
            self.post_max_length,
        )

    def version_in_service(self, index) -> str:
        """The model version whose collection the alias points to."""
        from stream.index import version_of

        collection = index.resolve(self.index_alias)
        if collection is None:
            raise SystemExit(
                f"no model served under {self.index_alias!r}: run `contrastgeo index` first"
            )
        return version_of(collection)


class WorkerSettings(ServiceSettings):
    """The streaming worker's settings (``contrastgeo worker``, ``predict``)."""

    # --- what a prediction is
    top_k: int = Field(10, ge=1, description="Candidates retrieved and reranked per post.")
    rerank: bool = True
    abstain_below: float = Field(
        0.0, ge=0, le=1, description="Say 'unknown' below this combined probability."
    )

    # --- consuming
    group_id: str = Field("contrastgeo-worker", description="Consumer group of the workers.")
    take_max: int = Field(
        64,
        ge=1,
        description="Posts per batch at most: a batch is what arrived while the previous one "
        "was processed, taken as soon as the encoder is free (no wait to fill it).",
    )
    rebalance_wait_s: float | None = Field(
        None,
        ge=0,
        description="On a rebalance, wait this long at most for the batch being delivered "
        "to be committed before its partitions move; below the session and rebalance "
        "timeouts (default: half the smaller).",
    )
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    # --- input rules
    max_payload_bytes: int = Field(
        1_000_000, ge=1024, description="Larger inputs are dead-lettered (too-large)."
    )
    max_text_chars: int = Field(
        20_000, ge=1, description="Longer post texts are dead-lettered (text-too-long)."
    )
    dead_letter_max_payload_bytes: int = Field(
        262_144,
        ge=0,
        le=MAX_REQUEST_BYTES // 2,
        description="Bytes of a bad input carried by its dead letter.",
    )
    max_output_bytes: int = Field(
        MAX_REQUEST_BYTES - 10_000,
        ge=4096,
        le=MAX_REQUEST_BYTES - 10_000,
        description="An input whose output (key + value) would be larger is dead-lettered "
        "(too-large) instead: the broker would refuse it on every retry.",
    )
    trusted_place_types: tuple[str, ...] = Field(
        ("city", "neighborhood", "poi"),
        description="Twitter place types precise enough to label a post (not admin/country).",
    )
    reload_poll_s: float = Field(
        30.0, gt=0, description="How often each worker re-reads the served alias."
    )
    retry_max_s: float = Field(30.0, gt=0, description="Longest wait between retries.")
    predict_attempts: int = Field(
        3, ge=1, description="Tries of a batch's prediction before it is bisected."
    )
    unready_after_s: float = Field(
        60.0, gt=0, description="/readyz turns 503 after batches fail this long in a row."
    )

    # --- the worker process
    web_host: str = Field("127.0.0.1", description="Health/metrics endpoints bind here.")
    web_port: int = Field(6066, ge=1, le=65535)
    data_dir: Path = Field(Path("runs/worker"), description="faust's local state folder.")

    def rebalance_wait(self) -> float:
        limit = min(self.session_timeout_s, self.rebalance_timeout_s)
        return limit / 2 if self.rebalance_wait_s is None else self.rebalance_wait_s

    @model_validator(mode="after")
    def _rebalance_wait_fits(self) -> WorkerSettings:
        limit = 0.9 * min(self.session_timeout_s, self.rebalance_timeout_s)
        if self.rebalance_wait() > limit:
            raise ValueError(
                f"rebalance_wait_s={self.rebalance_wait_s} must stay below 0.9 x the session "
                f"and rebalance timeouts ({limit:.1f} s): the group would drop the worker"
            )
        return self

    @model_validator(mode="after")
    def _dead_letters_fit(self) -> WorkerSettings:
        # a dead letter carries its payload excerpt in base64 (4/3), the key cut to 1,024
        # characters and a detail of 500: it must fit under max_output_bytes itself
        largest = self.dead_letter_max_payload_bytes * 4 // 3 + 8192
        if largest > self.max_output_bytes:
            raise ValueError(
                f"dead_letter_max_payload_bytes={self.dead_letter_max_payload_bytes} makes "
                f"dead letters of up to {largest} bytes, over max_output_bytes="
                f"{self.max_output_bytes}"
            )
        return self
