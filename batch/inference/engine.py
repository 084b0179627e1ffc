"""The pose engine: one async entry point, `predict(bytes, options)`, used by every caller (HTTP images,
manifest lines, the CLI, the benchmark).

Pipeline: decode + letterbox run on a CPU thread pool per request (so the next batch is prepared while
the current one runs); the dynamic batcher stacks prepared canvases into one forward pass on its own
thread; NMS runs on the backend's device; results come back as `PoseResult`s in original pixels.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from batch.custom_attributes import InferenceOptions
from batch.errors import ModelLoadError
from batch.inference import letterbox as lb
from batch.inference.backends import Backend, OnnxBackend, TorchBackend, export_onnx
from batch.inference.batcher import DynamicBatcher
from batch.inference.decode import DecodedImage, decode_image
from batch.inference.model_source import ModelInfo, describe, load_yolo, resolve_checkpoint
from batch.inference.postprocess import detections, to_result
from batch.schema import PoseResult
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    image: DecodedImage
    geometry: lb.Geometry
    canvas: np.ndarray
    options: InferenceOptions


@dataclass(frozen=True)
class Prediction:
    result: PoseResult
    image: DecodedImage  # kept for annotation


class PoseEngine:
    def __init__(self, info: ModelInfo, backend: Backend, settings: Settings) -> None:
        self.info = info
        self.backend = backend
        self.settings = settings
        self.default_options = InferenceOptions.defaults(settings)
        self.cpu_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cpu")
        self._batcher: DynamicBatcher[Prepared, PoseResult] = DynamicBatcher(
            self.run_batch,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000.0,
        )

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: Settings) -> PoseEngine:
        checkpoint = resolve_checkpoint(settings)
        yolo = load_yolo(checkpoint)
        info = describe(yolo, checkpoint)
        device = choose_device(settings.device)
        threads = settings.cpu_threads or os.cpu_count() or 1
        torch.set_num_threads(threads)  # Ultralytics sets cores - 1 on import; we want them all
        backend = _make_backend(settings, yolo, checkpoint, device, threads)
        engine = cls(info, backend, settings)
        engine.warm_up()
        log.info(
            "model %s ready: backend=%s device=%s half=%s keypoints=%d",
            info.name, backend.name, backend.device, backend.half, info.num_keypoints,
        )  # fmt: skip
        return engine

    def warm_up(self) -> None:
        size = self.settings.imgsz
        gray = DecodedImage(np.full((size, size, 3), 114, dtype=np.uint8))
        self.run_batch([self.prepare_decoded(gray, self.default_options)])

    # --- the async core ------------------------------------------------------------------------
    async def predict(self, data: bytes, options: InferenceOptions | None = None) -> Prediction:
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self.cpu_pool, self.prepare, data, options or self.default_options)
        result = await self._batcher.submit(prepared)
        return Prediction(result, prepared.image)

    async def close(self) -> None:
        await self._batcher.close()
        self.cpu_pool.shutdown(wait=False)

    @property
    def batch_sizes(self) -> list[int]:
        return self._batcher.batch_sizes

    # --- stages (plain functions of their inputs; run on pool threads) --------------------------
    def prepare(self, data: bytes, options: InferenceOptions) -> Prepared:
        return self.prepare_decoded(decode_image(data, max_pixels=self.settings.max_image_pixels), options)

    def prepare_decoded(self, image: DecodedImage, options: InferenceOptions) -> Prepared:
        geometry = lb.plan(image.height, image.width, options.imgsz, self.info.stride)
        return Prepared(image, geometry, lb.letterbox(image.rgb, geometry), options)

    def run_batch(self, items: Sequence[Prepared]) -> list[PoseResult]:
        """One forward pass per distinct canvas shape. Padding a canvas further to share a batch with
        another shape would change the model's scores (by ~0.01-0.03, measured), so it never happens:
        every image gets exactly the numbers it would get alone."""
        results: list[PoseResult | None] = [None] * len(items)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(items):
            by_shape.setdefault(item.canvas.shape[:2], []).append(index)
        for indices in by_shape.values():
            raw = self.backend.forward(np.stack([items[i].canvas for i in indices]))
            for row, i in enumerate(indices):
                p = items[i]
                results[i] = to_result(detections(raw[row], p.options, self.info), p.geometry, p.options, self.info)
        return [r for r in results if r is not None]


def choose_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"POSE_DEVICE={setting!r} but no CUDA device is available")
    return device


def _make_backend(settings: Settings, yolo: object, checkpoint: str, device: torch.device, threads: int) -> Backend:
    wanted = settings.backend
    if wanted == "auto":
        wanted = "torch" if device.type == "cuda" else "onnxruntime"
    half = settings.half if settings.half is not None else device.type == "cuda"
    if wanted == "torch":
        return TorchBackend(yolo, device, half)
    if device.type != "cpu":
        raise ModelLoadError("POSE_BACKEND=onnxruntime runs on the CPU; set POSE_DEVICE=cpu or POSE_BACKEND=torch")
    try:
        return OnnxBackend(export_onnx(checkpoint, settings.onnx_cache_dir, settings.imgsz), threads)
    except Exception as exc:
        if settings.backend == "onnxruntime":
            raise ModelLoadError(f"ONNX Runtime backend unavailable: {exc}") from exc
        log.warning("ONNX export failed (%s); falling back to the torch backend", exc)
        return TorchBackend(yolo, device, half)
