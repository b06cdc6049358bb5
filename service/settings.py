"""Service settings, read from the environment (prefix ``CV_``) and an optional ``.env`` file.

Built once in the app lifespan (or by a CLI command), never at import time, so tests and the CLI
can construct their own. The CLI and the service read the same settings, so a command run with the
service's ``CV_DATA_DIR`` / ``CV_DATABASE_URL`` works on the service's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_models_dir() -> Path:
    """``models/`` of the source checkout (where the trained models are committed)."""
    return REPO_ROOT / "models"


class Settings(BaseSettings):
    """Everything an operator can configure. Each field maps to ``CV_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CV_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="SQLite database, audit log, uploaded images")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/customs-vision.db"
    )
    models_dir: Path = Field(default_factory=default_models_dir, description="model cards + ONNX files")
    # NoDecode: the environment gives a comma-separated list, not JSON.
    required_models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("xray", "document", "similarity"),
        description="models that must load before /readyz answers 200",
    )
    backend: Literal["onnxruntime", "triton", "tensorrt", "torch"] = "onnxruntime"
    triton_url: str = "127.0.0.1:8001"
    triton_protocol: Literal["http", "grpc"] = "grpc"
    threads: int | None = Field(default=None, ge=1, description="ONNX Runtime intra-op threads per model")
    # int8: serve <name>-int8.json (written by `customs-vision quantize`) where one exists; ONNX Runtime only.
    precision: Literal["fp32", "int8"] = Field(
        default="fp32", description="fp32, or int8: each model's INT8 card where there is one (onnxruntime backend)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="largest accepted image file, bytes")
    max_pixels: int = Field(default=100_000_000, ge=1, description="largest accepted image, width x height")
    # Micro-batching of model calls (service/batching.py). CV_BATCHING=off runs every request alone.
    batching: bool = Field(default=True, description="gather concurrent requests into one model call")
    max_batch: int = Field(default=8, ge=1, description="most requests in one model call")
    max_wait_ms: float = Field(default=5.0, ge=0, description="how long a request may wait for company")
    max_queue: int = Field(default=64, ge=1, description="requests waiting per model before 503")
    decode_workers: int = Field(
        default=2,
        ge=1,
        description="threads decoding uploads, also stored uploads for report images (each holds <= max_pixels x 3 B)",
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After seconds sent with 503 answers")
    # A model whose backend (Triton) is unavailable at start-up is tried again: after 1 s, then
    # twice as long each time, never longer than this, until it connects.
    model_retry_max_s: float = Field(
        default=30.0, gt=0, description="longest wait between attempts to reach an unavailable model backend, seconds"
    )
    report_image_max_side: int = Field(
        default=2048, ge=64, description="report images (image.png, annotated.png) are downscaled to this longest side"
    )
    match_top_k: int = Field(default=3, ge=1, le=50, description="specimens listed per stamp/signature")
    xray_flip_tta: bool = Field(
        default=True,
        description="X-ray: also run each scan mirrored and fuse the boxes (higher mAP, twice the model time)",
    )
    xray_tiles: bool = Field(
        default=True,
        description="X-ray: also run four overlapping close-up tiles of each scan and fuse the boxes "
        "(finds more small items; four more model images per scan)",
    )

    @field_validator("required_models", mode="before")
    @classmethod
    def _split_csv(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'customs-vision.db').resolve()}"
