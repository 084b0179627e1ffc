"""The pose engine: one async entry point, `predict(bytes, options)`, used by every caller (HTTP images,
manifest lines, the CLI, the benchmark).

Pipeline: decode + letterbox run on a CPU thread pool per request (so the next batch is prepared while
the current one runs); the dynamic batcher stacks prepared canvases into one forward pass on its own
thread; NMS runs on the backend's device; results come back as `PoseResult`s in original pixels.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from batch.custom_attributes import InferenceOptions
from batch.errors import PoseError
from batch.inference import letterbox as lb
from batch.inference.backend_factory import make_backend
from batch.inference.backends import Backend
from batch.inference.batcher import BatchStats, DynamicBatcher
from batch.inference.decode import DecodedImage, decode_image
from batch.inference.device import choose_device
from batch.inference.device_preprocess import decode_batch, device_decodable, letterbox_tensor, to_numpy_rgb
from batch.inference.model_source import ModelInfo, describe, load_yolo, resolve_checkpoint
from batch.inference.postprocess import detections, to_result
from batch.inference.process_stats import peak_rss_bytes
from batch.schema import PoseResult
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Decoded and letterboxed on a CPU pool thread; or, on the device, inside the batch."""

    image: DecodedImage
    geometry: lb.Geometry
    canvas: np.ndarray | torch.Tensor  # (canvas_h, canvas_w, 3) uint8, on the host or the device
    options: InferenceOptions


@dataclass(frozen=True)
class PendingJpeg:
    """A JPEG whose header passed the checks, to be decoded with its whole batch on the device."""

    data: bytes
    options: InferenceOptions


BatchItem = Prepared | PendingJpeg


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
        self.device_decode = settings.device_decode == "on" or (
            settings.device_decode == "auto" and backend.device.type == "cuda"
        )
        self.max_pixels = settings.max_image_pixels
        self.cpu_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cpu")
        self.max_batch_size = settings.batch_size_for(backend.device.type)
        self._batcher: DynamicBatcher[BatchItem, Prediction | PoseError] = DynamicBatcher(
            self.run_batch,
            max_batch_size=self.max_batch_size,
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
        backend = make_backend(settings, yolo, checkpoint, device, threads)
        engine = cls(info, backend, settings)
        engine.warm_up()
        log.info(
            "model %s ready: backend=%s device=%s precision=%s keypoints=%d",
            info.name, backend.name, backend.device, backend.precision, info.num_keypoints,
        )  # fmt: skip
        return engine

    def warm_up(self) -> None:
        """One pass through every stage (the device decoder included), so the first request is not slow."""
        size = self.settings.imgsz
        buffer = io.BytesIO()
        Image.new("RGB", (size, size * 3 // 4), (114, 114, 114)).save(buffer, "JPEG")
        self.run_batch([self.prepare(buffer.getvalue(), self.default_options)])

    # --- the async core ------------------------------------------------------------------------
    async def predict(self, data: bytes, options: InferenceOptions | None = None) -> Prediction:
        loop = asyncio.get_running_loop()
        item = await loop.run_in_executor(self.cpu_pool, self.prepare, data, options or self.default_options)
        outcome = await self._batcher.submit(item)
        if isinstance(outcome, PoseError):
            raise outcome
        return outcome

    async def close(self) -> None:
        await self._batcher.close()
        self.cpu_pool.shutdown(wait=False)

    @property
    def batch_stats(self) -> BatchStats:
        return self._batcher.stats

    def metrics(self) -> dict[str, object]:
        gpu_peak = torch.cuda.max_memory_allocated(self.backend.device) if self.backend.device.type == "cuda" else 0
        return {
            "backend": self.backend.name,
            "device": str(self.backend.device),
            "half": self.backend.half,
            "precision": self.backend.precision,
            **self._batcher.stats.as_dict(),
            "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
            "peak_gpu_memory_mb": round(gpu_peak / 2**20, 1),
        }

    # --- stages (plain functions of their inputs; run on pool threads) --------------------------
    def prepare(self, data: bytes, options: InferenceOptions) -> BatchItem:
        if self.device_decode and device_decodable(data, self.max_pixels) is not None:
            return PendingJpeg(data, options)
        return self.prepare_decoded(decode_image(data, max_pixels=self.max_pixels), options)

    def prepare_decoded(self, image: DecodedImage, options: InferenceOptions) -> Prepared:
        geometry = lb.plan(image.height, image.width, options.imgsz, self.info.stride)
        return Prepared(image, geometry, lb.letterbox(image.rgb, geometry), options)

    def run_batch(self, items: Sequence[BatchItem]) -> list[Prediction | PoseError]:
        """One forward pass per distinct canvas shape. Padding a canvas further to share a batch with
        another shape would change the model's scores (by ~0.01-0.03, measured), so it never happens:
        every image gets exactly the numbers it would get alone. An image that fails to decode on the
        device gets its error here, without failing the others."""
        outcomes: list[Prepared | Prediction | PoseError] = list(self._decode_pending(items))
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(outcomes):
            if isinstance(item, Prepared):
                by_shape.setdefault(tuple(item.canvas.shape[:2]), []).append(index)
        for indices in by_shape.values():
            group = [outcomes[i] for i in indices]
            assert all(isinstance(p, Prepared) for p in group)
            raw = self._forward([p.canvas for p in group])  # type: ignore[union-attr]
            for row, (index, p) in enumerate(zip(indices, group, strict=True)):
                assert isinstance(p, Prepared)
                rows = detections(raw[row], p.options, self.info)
                outcomes[index] = Prediction(to_result(rows, p.geometry, p.options, self.info), p.image)
        return [o for o in outcomes if not isinstance(o, Prepared)]

    def _forward(self, canvases: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        if isinstance(canvases[0], torch.Tensor):
            return self.backend.forward_tensor(torch.stack(canvases))  # type: ignore[arg-type]
        return self.backend.forward(np.stack(canvases))

    def _decode_pending(self, items: Sequence[BatchItem]) -> list[Prepared | PoseError]:
        pending = [item for item in items if isinstance(item, PendingJpeg)]
        decoded = iter(decode_batch([p.data for p in pending], self.backend.device) if pending else [])
        ready: list[Prepared | PoseError] = []
        for item in items:
            if isinstance(item, Prepared):
                ready.append(item)
                continue
            image = next(decoded)
            if image is None:  # the device decoder refused it: the CPU path decodes it, or says why not
                try:
                    ready.append(
                        self.prepare_decoded(decode_image(item.data, max_pixels=self.max_pixels), item.options)
                    )
                except PoseError as exc:
                    ready.append(exc)
                continue
            geometry = lb.plan(int(image.shape[1]), int(image.shape[2]), item.options.imgsz, self.info.stride)
            canvas = letterbox_tensor(image, geometry)
            ready.append(Prepared(DecodedImage(to_numpy_rgb(image)), geometry, canvas, item.options))
        return ready
