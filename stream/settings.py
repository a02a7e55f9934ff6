"""The service's settings: one pydantic-settings class, read from ``CONTRASTGEO_*``
environment variables (or a ``.env`` file); the CLI's flags override them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTRASTGEO_", env_file=".env", extra="ignore")

    # model store: one folder per exported model version (``contrastgeo export``)
    model_store: Path = Field(Path("runs/models"), description="Folder of exported models.")
    # vector index: a Qdrant server when qdrant_url is set, else Qdrant's embedded engine
    qdrant_url: str | None = Field(None, description="Qdrant server URL (production).")
    qdrant_api_key: SecretStr | None = Field(None, description="Qdrant API key.")
    index_path: Path = Field(Path("runs/index"), description="Embedded index folder.")
    index_alias: str = Field("locations", description="Alias of the collection served.")
    # inference
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "int8"] = "auto"
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0 = default).")
    batch_size: int = Field(64, ge=1)
    top_k: int = Field(10, ge=1, description="Candidates retrieved and reranked per post.")
    rerank: bool = True
    abstain_below: float = Field(
        0.0, ge=0, le=1, description="Say 'unknown' below this combined probability."
    )

    def open_index(self):
        from stream.index import open_index

        key = self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None
        return open_index(self.qdrant_url, key, self.index_path)

    def model_folder(self, version: str) -> Path:
        return self.model_store / version

    def load_model(self, version: str):
        from stream.runtime import OnnxModel

        return OnnxModel(
            self.model_folder(version), self.precision, self.device, self.threads, self.batch_size
        )

    def served_version(self, index) -> str:
        """The model version whose collection the alias points to."""
        from stream.index import version_of

        collection = index.resolve(self.index_alias)
        if collection is None:
            raise SystemExit(
                f"no model served under {self.index_alias!r}: run `contrastgeo index` first"
            )
        return version_of(collection)
