"""Every setting of the serving process, in one typed object built once at start-up.

All environment-variable names live here. SageMaker's own variables keep their names
(`SAGEMAKER_*`, `SM_MODEL_DIR`); the project's own start with `POSE_`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from batch.manifest_line import DEFAULT_MAX_LINES

Backend = Literal["auto", "torch", "onnxruntime", "openvino"]
Tracker = Literal["bytetrack", "botsort"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: object) -> bool:
    """SageMaker spells booleans `true` (developer guide) or `True` (SDK local mode): accept both."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # --- model -----------------------------------------------------------------------------
    pose_model: str | None = Field(
        None,
        validation_alias="POSE_MODEL",
        description="Path to an Ultralytics pose checkpoint, or a model name Ultralytics downloads.",
    )
    model_dir: Path = Field(
        Path("/opt/ml/model"),
        validation_alias=AliasChoices("SM_MODEL_DIR", "POSE_MODEL_DIR"),
        description="Where SageMaker unpacks model.tar.gz; searched when POSE_MODEL is unset.",
    )
    backend: Backend = Field("auto", validation_alias="POSE_BACKEND")
    device: str = Field("auto", validation_alias="POSE_DEVICE", description="auto, cpu, cuda or cuda:N")
    half: bool | None = Field(
        None, validation_alias="POSE_HALF", description="FP16 on CUDA; default: on for CUDA, off on CPU"
    )
    onnx_cache_dir: Path = Field(Path.home() / ".cache" / "posebatch" / "onnx", validation_alias="POSE_ONNX_CACHE_DIR")
    cpu_threads: int = Field(0, ge=0, validation_alias="POSE_CPU_THREADS", description="0 = all cores")
    device_decode: Literal["auto", "on", "off"] = Field(
        "auto",
        validation_alias="POSE_DEVICE_DECODE",
        description="Decode JPEGs in batches on the model's device (nvJPEG on CUDA); auto = on for CUDA.",
    )
    openvino_precision: Literal["auto", "f32", "bf16"] = Field(
        "auto",
        validation_alias="POSE_OPENVINO_PRECISION",
        description="OpenVINO precision: auto = bf16 where the CPU has it natively (what POSE_BACKEND=auto runs "
        "there), else f32; f32 for exact parity with Ultralytics' f32 predict; bf16 (native only).",
    )

    # --- default thresholds (overridable per request through custom attributes) ---------------
    conf: float = Field(0.25, ge=0.0, le=1.0, validation_alias="POSE_CONF")
    iou: float = Field(0.7, ge=0.0, le=1.0, validation_alias="POSE_IOU")
    max_det: int = Field(300, ge=1, le=3000, validation_alias="POSE_MAX_DET")
    imgsz: int = Field(640, ge=32, le=4096, validation_alias="POSE_IMGSZ")
    # The model's working memory grows with the letterboxed canvas, not the image: a 98-byte 32x32 PNG at
    # imgsz=4096 took 12.6 s and +4.8 GB. The canvas is charged to the pixel budget, and this caps what a
    # request may ask for.
    max_imgsz: int = Field(
        1280,
        ge=32,
        le=4096,
        validation_alias="POSE_MAX_IMGSZ",
        description="Largest imgsz a request may ask for (custom attribute); larger is a 400. Default 1280: "
        "a 1280 x 1280 canvas costs ~160 MB in a CPU forward (~100 bytes per canvas pixel, measured).",
    )

    # --- input limits ------------------------------------------------------------------------
    max_image_pixels: int = Field(
        80_000_000,
        ge=1,
        validation_alias="POSE_MAX_IMAGE_PIXELS",
        description="Decoded images larger than this are refused (decompression bombs).",
    )
    max_payload_mb: float = Field(
        100.0,
        ge=0,
        validation_alias="SAGEMAKER_MAX_PAYLOAD_IN_MB",
        description="Largest request body; 0 means no limit (SageMaker's chunked streaming).",
    )
    decode_budget_mpix: float = Field(
        120.0,
        ge=0,
        validation_alias="POSE_DECODE_BUDGET_MPIX",
        description=(
            "Megapixels decoded or held at once across all requests; others wait. An image larger than "
            "the budget runs alone. 0 = no limit. See README, Memory."
        ),
    )
    reduced_decode: bool = Field(
        True,
        validation_alias="POSE_REDUCED_DECODE",
        description="Decode large JPEGs at a reduced DCT scale (1/2..1/8) covering imgsz and the annotated size.",
    )

    # --- HTTP server ---------------------------------------------------------------------------
    host: str = Field("0.0.0.0", validation_alias="POSE_BIND_HOST")
    port: int = Field(8080, ge=1, le=65535, validation_alias="SAGEMAKER_BIND_TO_PORT")
    listen_fd: int | None = Field(
        None,
        ge=0,
        validation_alias="POSE_LISTEN_FD",
        description="An inherited listening socket to serve on instead of binding host:port (the local stack "
        "passes one, so that no other process can take the port first; SageMaker never sets it).",
    )

    # --- Batch Transform -------------------------------------------------------------------------
    sagemaker_batch: bool = Field(False, validation_alias="SAGEMAKER_BATCH")
    batch_error_records: bool = Field(
        True,
        validation_alias="POSE_BATCH_ERROR_RECORDS",
        description="Under Batch Transform, answer a bad image with 200 + error record instead of 4xx.",
    )
    max_concurrent_transforms: int | None = Field(None, ge=1, validation_alias="SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
    embed_annotated: bool = Field(
        False,
        validation_alias="POSE_EMBED_ANNOTATED",
        description="Add the annotated JPEG (base64) to JSON results; set by the images-mode launcher.",
    )
    allowed_buckets: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias="POSE_ALLOWED_BUCKETS",
        description="Buckets the container may read (manifest mode) and write (annotated outputs).",
    )
    s3_concurrency: int = Field(16, ge=1, le=256, validation_alias="POSE_S3_CONCURRENCY")
    max_s3_object_mb: float = Field(
        200.0,
        ge=0,
        validation_alias="POSE_MAX_S3_OBJECT_MB",
        description="Largest S3 object the container reads (manifest lines); 0 = no limit.",
    )
    manifest_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias="POSE_MANIFEST_CONCURRENCY",
        description="Lines of one manifest request fetched and posed at once.",
    )
    max_manifest_lines: int = Field(
        DEFAULT_MAX_LINES,
        ge=1,
        le=100_000,
        validation_alias="POSE_MAX_MANIFEST_LINES",
        description="Most lines one manifest request may hold (blank ones count); more is a 413. The launcher "
        "keeps its shards under it.",
    )

    # --- dynamic batching ------------------------------------------------------------------------
    max_batch_size: int | None = Field(
        None,
        ge=1,
        le=512,
        validation_alias="POSE_MAX_BATCH_SIZE",
        description="Largest model batch; default 32 on CUDA, 8 on CPU (larger CPU batches measured no faster).",
    )
    max_batch_wait_ms: float = Field(4.0, ge=0, le=1000, validation_alias="POSE_MAX_BATCH_WAIT_MS")
    switch_interval_ms: float | None = Field(
        None,
        gt=0,
        le=100,
        validation_alias="POSE_SWITCH_INTERVAL_MS",
        description="The interpreter's thread switch interval (sys.setswitchinterval); default: Python's 5 ms. "
        "A thread that waits for the GIL waits up to this long, and the batch thread takes it back after "
        "every torch call.",
    )

    annotated_jpeg_quality: int = Field(90, ge=10, le=100, validation_alias="POSE_JPEG_QUALITY")
    # 1000: a quarter of a 12 MP (or an eighth of a 48 MP) photo's 4000-4080 px longer side, so phone photos
    # decode at libjpeg's 1/4 (1/8) scale: 1.20x the images mode and 1.33x the manifest mode of the old
    # 1920 (decoded at 1/2) on phone photos, side by side in one benchmark run (README, Throughput).
    annotated_max_side: int = Field(
        1000,
        ge=0,
        validation_alias="POSE_ANNOTATED_MAX_SIDE",
        description="Longer side of annotated images, in pixels; 0 = the original resolution.",
    )

    # --- video (batch/video; README "Video") ----------------------------------------------------------
    video_frame_stride: int = Field(
        1, ge=1, le=100_000, validation_alias="POSE_VIDEO_FRAME_STRIDE", description="Pose every Nth frame."
    )
    video_fps: float | None = Field(
        None,
        gt=0,
        le=1000,
        validation_alias="POSE_VIDEO_FPS",
        description="Pose frames at this rate (by timestamp) instead of every Nth; unset: every frame.",
    )
    video_track: bool = Field(True, validation_alias="POSE_VIDEO_TRACK", description="Track persons across frames.")
    video_tracker: Tracker = Field("bytetrack", validation_alias="POSE_VIDEO_TRACKER")
    video_gmc: bool = Field(
        True, validation_alias="POSE_VIDEO_GMC", description="BoT-SORT's camera-motion compensation (botsort only)."
    )
    video_max_duration_s: float = Field(
        7200.0,
        gt=0,
        validation_alias="POSE_VIDEO_MAX_DURATION_S",
        description="Longer videos are refused from their container header, before decoding.",
    )
    video_max_mpix_per_s: float = Field(
        500.0,
        gt=0,
        validation_alias="POSE_VIDEO_MAX_MPIX_PER_S",
        description="Pixel rate (width x height x fps) above which a video is refused from its header (4K60 fits).",
    )
    video_max_mb: float = Field(
        1024.0,
        ge=0,
        validation_alias="POSE_MAX_VIDEO_MB",
        description="Largest video body or S3 object (asynchronous inference carries up to 1 GB); 0 = no limit.",
    )
    video_time_limit_s: float = Field(
        840.0,
        gt=0,
        validation_alias="POSE_VIDEO_TIME_LIMIT_S",
        description="Seconds one video may take; past it the video stops and its record says so. Keep it under "
        "the caller's timeout (async InvocationTimeoutSeconds, default 900; a transform job's --timeout-s).",
    )
    video_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        "ultrafast",
        validation_alias="POSE_VIDEO_PRESET",
        description="x264 preset of annotated MP4s (crf 23): the encoder shares the cores with the model, so a "
        "faster preset gives frames/s for bytes (1,000 720p frames on 2 cores, whole service: ultrafast 52, "
        "superfast 45, veryfast 40 frames/s; MP4s of 57, 41, 31 MB).",
    )
    video_annotated_max_side: int = Field(
        1280,
        ge=0,
        validation_alias="POSE_VIDEO_ANNOTATED_MAX_SIDE",
        description="Longer side of annotated MP4s, pixels (made even for yuv420p); 0 = the video's own size.",
    )

    @field_validator(
        "sagemaker_batch", "batch_error_records", "embed_annotated", "reduced_decode", "video_track", "video_gmc",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _bool(cls, value: object) -> bool:
        return parse_bool(value)

    @field_validator("half", mode="before")
    @classmethod
    def _optional_bool(cls, value: object) -> bool | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in {"", "auto"}):
            return None
        return parse_bool(value)

    @field_validator("video_fps", mode="before")
    @classmethod
    def _optional_fps(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("imgsz", "max_imgsz")
    @classmethod
    def _imgsz(cls, value: int, info: ValidationInfo) -> int:
        # The same rule as a request's `imgsz` custom attribute (the model's stride is 32).
        if value % 32:
            name = "POSE_IMGSZ" if info.field_name == "imgsz" else "POSE_MAX_IMGSZ"
            raise ValueError(f"{name}={value} must be a multiple of 32")
        return value

    @model_validator(mode="after")
    def _imgsz_within_its_cap(self) -> Settings:
        if self.imgsz > self.max_imgsz:
            raise ValueError(f"POSE_IMGSZ={self.imgsz} is above POSE_MAX_IMGSZ={self.max_imgsz}")
        return self

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _buckets(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            return tuple(b.strip() for b in value.split(",") if b.strip())
        if isinstance(value, list | tuple):
            return tuple(str(b) for b in value)
        raise ValueError("expected a comma-separated list of bucket names")

    @property
    def max_payload_bytes(self) -> int | None:
        return None if self.max_payload_mb == 0 else int(self.max_payload_mb * 1024 * 1024)

    @property
    def max_s3_object_bytes(self) -> int | None:
        return None if self.max_s3_object_mb == 0 else int(self.max_s3_object_mb * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int | None:
        return None if self.video_max_mb == 0 else int(self.video_max_mb * 1024 * 1024)

    @property
    def decode_budget_pixels(self) -> int:
        return int(self.decode_budget_mpix * 1_000_000)

    def batch_size_for(self, device_type: str) -> int:
        return self.max_batch_size or (32 if device_type == "cuda" else 8)

    def advertised_concurrency(self, batch_size: int) -> int:
        """Enough requests in flight to fill one model batch while the previous one runs."""
        return self.max_concurrent_transforms or 2 * batch_size

    def updated(self, **changes: object) -> Settings:
        """A copy with some fields changed (by field name), validated like the environment is."""
        return type(self).model_validate({**self.model_dump(), **changes})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from a mapping (tests inject one); the process environment by default."""
        source = dict(os.environ if environ is None else environ)
        known = cls.environment_names()
        return cls.model_validate({k: v for k, v in source.items() if k in known})

    @classmethod
    def environment_names(cls) -> frozenset[str]:
        """Every environment variable a setting is read from."""
        return frozenset(alias for field in cls.model_fields.values() for alias in _aliases(field.validation_alias))


def _aliases(alias: object) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [a for a in alias.choices if isinstance(a, str)]
    return []


class JobSettings(BaseSettings):
    """The container's settings when it runs as a training or processing job (`train`, `evaluate`)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    ml_root: Path = Field(
        Path("/opt/ml"),
        validation_alias="POSE_ML_ROOT",
        description="Where SageMaker's /opt/ml layout is; the local stand-in, which has no container "
        "filesystem, points it at the job's folder (paths under /opt/ml are re-rooted there).",
    )
    training_job_name: str | None = Field(
        None, validation_alias="TRAINING_JOB_NAME", description="Set by SageMaker in training containers."
    )
    shm_path: Path = Field(
        Path("/dev/shm"),
        validation_alias="POSE_SHM_PATH",
        description="The shared memory DataLoader workers pass batches through; its size bounds the workers.",
    )

    def ml_path(self, path: str | Path) -> Path:
        """A path SageMaker names under /opt/ml (a processing job's LocalPath), under `ml_root`."""
        given = Path(path)
        try:
            return self.ml_root / given.relative_to("/opt/ml")
        except ValueError:
            return given

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        source = dict(os.environ if environ is None else environ)
        known = frozenset(alias for field in cls.model_fields.values() for alias in _aliases(field.validation_alias))
        return cls.model_validate({k: v for k, v in source.items() if k in known})
