"""The pose engine: one async entry point, `predict(bytes, options)`, used by every caller (HTTP images,
manifest lines, the CLI, the benchmark).

Pipeline: the header is read and the image's decoded pixels reserved in the pixel budget (requests
wait there, they never fail for memory); decode (a large JPEG at a reduced DCT scale that still
covers the model input and the annotated size) + letterbox run on a CPU thread pool per request (so
the next batch is prepared while the current one runs); the dynamic batcher stacks prepared canvases
into forward passes on their own threads (one per backend lane: OpenVINO's streams run side by side);
NMS runs on the backend's device; results come back as `PoseResult`s in original pixels, with the
annotated JPEG when asked for (drawn and encoded on the CPU pool, never on the batch thread). The
decoded image lives only inside `predict`: what is kept for annotation is already shrunk to
`POSE_ANNOTATED_MAX_SIDE`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from batch.annotate import annotated_jpeg, fit, fitted_size
from batch.custom_attributes import InferenceOptions
from batch.errors import PoseError
from batch.inference import device_preprocess
from batch.inference import letterbox as lb
from batch.inference.backend_factory import make_backend
from batch.inference.backends import Backend
from batch.inference.batcher import BatchStats, DynamicBatcher
from batch.inference.decode import DecodedImage, Source, decode, open_image
from batch.inference.device import choose_device
from batch.inference.model_source import ModelInfo, describe, load_yolo, resolve_checkpoint
from batch.inference.pixel_budget import PixelBudget, canvas_weight
from batch.inference.postprocess import detections_batch, to_result
from batch.inference.process_stats import peak_rss_bytes
from batch.schema import PoseResult
from batch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """An input whose header passed the checks, with its decoding decided (nothing decoded yet)."""

    data: bytes
    options: InferenceOptions
    annotate: bool
    source: Source
    scale: int  # DCT reduction for the CPU path; 1 = full decode
    on_device: bool
    canvas_charge: int = 0  # what its letterboxed model input costs in the pixel budget

    @property
    def pixels(self) -> int:
        """What decoding it and running the model on its canvas cost in the pixel budget."""
        return self.source.pixels_at(self.scale) + self.canvas_charge


@dataclass(frozen=True)
class Prepared:
    """Decoded and letterboxed on a CPU pool thread; or, on the device, inside the batch."""

    geometry: lb.Geometry
    canvas: np.ndarray | torch.Tensor  # (canvas_h, canvas_w, 3) uint8, on the host or the device
    options: InferenceOptions
    keep: np.ndarray | None = None  # the image to annotate, already at its annotated size


@dataclass(frozen=True)
class PendingJpeg:
    """A JPEG whose header passed the checks, to be decoded with its whole batch on the device."""

    data: bytes
    options: InferenceOptions
    annotate: bool = False


BatchItem = Prepared | PendingJpeg


@dataclass(frozen=True)
class Posed:
    """The batch thread's answer for one image."""

    result: PoseResult
    keep: np.ndarray | None = None


@dataclass(frozen=True)
class Prediction:
    result: PoseResult
    annotated: bytes | None = None  # JPEG, when `predict(..., annotate=True)`


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
        self.budget = PixelBudget(settings.decode_budget_pixels)
        self.canvas_weight = canvas_weight(backend.device.type)
        self.cpu_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cpu")
        self.max_batch_size = settings.batch_size_for(backend.device.type)
        self._batcher: DynamicBatcher[BatchItem, Posed | PoseError] = DynamicBatcher(
            self.run_batch,
            max_batch_size=self.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000.0,
            lanes=backend.lanes,
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
    async def predict(
        self, data: bytes, options: InferenceOptions | None = None, *, annotate: bool = False
    ) -> Prediction:
        """Pose one image; with `annotate`, also its annotated JPEG. Raises PoseError for bad input."""
        loop = asyncio.get_running_loop()
        planned = await loop.run_in_executor(self.cpu_pool, self.plan, data, options or self.default_options, annotate)
        async with self.budget.hold(planned.pixels):
            item = await loop.run_in_executor(self.cpu_pool, self.decode_planned, planned)
            outcome = await self._batcher.submit(item)
            del item  # the canvas is not needed any more
            if isinstance(outcome, PoseError):
                raise outcome
            result = outcome.result
            if planned.source.frames > 1:  # the record says that only the first frame was posed
                result = result.model_copy(update={"frames": planned.source.frames})
            jpeg = None
            if annotate and outcome.keep is not None:
                quality = self.settings.annotated_jpeg_quality
                jpeg = await loop.run_in_executor(self.cpu_pool, annotated_jpeg, outcome.keep, result, quality)
        return Prediction(result, jpeg)

    async def predict_rgb(self, rgb: np.ndarray, options: InferenceOptions | None = None) -> PoseResult:
        """Pose one decoded, upright RGB frame (`(h, w, 3)` uint8; a video's) through the same letterbox and
        batcher as images, so that concurrent frames of one video fill batches; its pixels are held in the
        pixel budget meanwhile. Results are in the frame's pixels, exactly what the same pixels get as an image."""
        loop = asyncio.get_running_loop()
        options = options or self.default_options
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        async with self.budget.hold(height * width + self._canvas_charge(height, width, options.imgsz)):
            item = await loop.run_in_executor(self.cpu_pool, self.prepare_decoded, DecodedImage(rgb), options)
            outcome = await self._batcher.submit(item)
        if isinstance(outcome, PoseError):
            raise outcome
        return outcome.result

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
            "lanes": self.backend.lanes,
            **self._batcher.stats.as_dict(),
            "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
            "peak_gpu_memory_mb": round(gpu_peak / 2**20, 1),
            "decode_budget_peak_mpix": round(self.budget.peak_in_use / 1e6, 1),
        }

    # --- stages (plain functions of their inputs; run on pool threads) --------------------------
    def plan(self, data: bytes, options: InferenceOptions, annotate: bool = False) -> Planned:
        """Read the header (errors for bad input come from here) and decide how to decode."""
        source = open_image(data, max_pixels=self.max_pixels)
        scale = source.scale_for(self._min_side(options))
        on_device = self.device_decode and device_preprocess.takes(source, scale)
        canvas_charge = self._canvas_charge(source.height, source.width, options.imgsz)
        return Planned(data, options, annotate, source, scale, on_device, canvas_charge)

    def _canvas_charge(self, height: int, width: int, imgsz: int) -> int:
        """The letterboxed canvas's pixels in the budget (`pixel_budget.canvas_weight`): imgsz sizes the
        model's memory whatever the image's size."""
        canvas = lb.plan(height, width, imgsz, self.info.stride)
        return self.canvas_weight * canvas.canvas_h * canvas.canvas_w

    def _min_side(self, options: InferenceOptions) -> int:
        """The longer side the decoded image needs (0: full resolution): the model input's and the
        annotated image's (`POSE_ANNOTATED_MAX_SIDE`). It never depends on whether this request wants
        an annotated image, so every path (images, manifest, annotated or not) gets the same keypoints
        for the same image; annotated images at original resolution (0) mean full decodes throughout."""
        if not self.settings.reduced_decode or self.settings.annotated_max_side == 0:
            return 0
        return max(options.imgsz, self.settings.annotated_max_side)

    def decode_planned(self, planned: Planned) -> BatchItem:
        if planned.on_device:
            return PendingJpeg(planned.data, planned.options, planned.annotate)
        image = decode(planned.source, scale=planned.scale)
        return self.prepare_decoded(image, planned.options, annotate=planned.annotate)

    def prepare(self, data: bytes, options: InferenceOptions, annotate: bool = False) -> BatchItem:
        """`plan` + `decode_planned` in one call (warm-up, benchmarks)."""
        return self.decode_planned(self.plan(data, options, annotate))

    def prepare_decoded(self, image: DecodedImage, options: InferenceOptions, *, annotate: bool = False) -> Prepared:
        geometry = lb.plan(
            image.height,
            image.width,
            options.imgsz,
            self.info.stride,
            scale=image.scale,
            original=(image.original_height, image.original_width),
        )
        keep = fit(image.rgb, self._annotated_side(image.original_width, image.original_height)) if annotate else None
        return Prepared(geometry, lb.letterbox(image.rgb, geometry), options, keep)

    def _annotated_side(self, width: int, height: int) -> int:
        return self.settings.annotated_max_side or max(width, height)

    def run_batch(self, items: Sequence[BatchItem]) -> list[Posed | PoseError]:
        """One forward pass per distinct canvas shape. Padding a canvas further to share a batch with
        another shape would change the model's scores (by ~0.01-0.03, measured), so it never happens:
        every image gets exactly the numbers it would get alone. An image that fails to decode on the
        device gets its error here, without failing the others."""
        outcomes: list[Prepared | Posed | PoseError] = list(self._decode_pending(items))
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(outcomes):
            if isinstance(item, Prepared):
                by_shape.setdefault(tuple(item.canvas.shape[:2]), []).append(index)
        for indices in by_shape.values():
            group = [outcomes[i] for i in indices]
            assert all(isinstance(p, Prepared) for p in group)
            prepared: list[Prepared] = group  # type: ignore[assignment]
            raw = self._forward([p.canvas for p in prepared])
            rows = detections_batch(raw, [p.options for p in prepared], self.info)
            for index, p, image_rows in zip(indices, prepared, rows, strict=True):
                outcomes[index] = Posed(to_result(image_rows, p.geometry, p.options, self.info), p.keep)
        return [o for o in outcomes if not isinstance(o, Prepared)]

    def _forward(self, canvases: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        if self.backend.device.type == "cuda":
            return self._forward_cuda(canvases)
        if any(isinstance(c, torch.Tensor) for c in canvases):  # the device path, tried on a CPU
            return self.backend.forward_tensor(torch.stack([torch.as_tensor(c) for c in canvases]))
        return self.backend.forward(np.stack(canvases))

    def _forward_cuda(self, canvases: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Device-decoded and CPU-decoded canvases of one shape share the batch, all on the device.

        The batch is padded to a power of two (or the largest batch), so that at most log2(largest) + 1
        batch sizes reach the model per canvas shape: the first pass over COCO-val-mini (11 canvas shapes,
        any batch size) ran at 10 img/s on an H200 against 51 warm, which new (size, shape) pairs costing
        cuDNN new plans would explain. Padding rows cost an idle GPU little; their outputs are dropped."""
        device = self.backend.device
        host = [c for c in canvases if not isinstance(c, torch.Tensor)]
        uploaded: Iterator[torch.Tensor] = iter(
            torch.from_numpy(np.stack(host)).pin_memory().to(device, non_blocking=True) if host else []
        )
        batch = torch.stack([c if isinstance(c, torch.Tensor) else next(uploaded) for c in canvases])
        size = len(canvases)
        padded = padded_batch_size(size, self.max_batch_size)
        if padded > size:
            batch = torch.cat([batch, batch.new_full((padded - size, *batch.shape[1:]), lb.PAD_VALUE)])
        return self.backend.forward_tensor(batch)[:size]

    def _decode_pending(self, items: Sequence[BatchItem]) -> list[Prepared | PoseError]:
        pending = [item for item in items if isinstance(item, PendingJpeg)]
        decoded = iter(
            device_preprocess.decode_batch([p.data for p in pending], self.backend.device) if pending else []
        )
        ready: list[Prepared | PoseError] = []
        for item in items:
            if isinstance(item, Prepared):
                ready.append(item)
                continue
            image = next(decoded)
            if image is None:  # the device decoder refused it: the CPU path decodes it, or says why not
                try:
                    source = open_image(item.data, max_pixels=self.max_pixels)
                    ready.append(self.prepare_decoded(decode(source), item.options, annotate=item.annotate))
                except PoseError as exc:
                    ready.append(exc)
                continue
            height, width = int(image.shape[1]), int(image.shape[2])
            geometry = lb.plan(height, width, item.options.imgsz, self.info.stride)
            canvas = device_preprocess.letterbox_tensor(image, geometry)
            keep = None
            if item.annotate:
                keep = device_preprocess.to_numpy_rgb(
                    image, fitted_size(height, width, self._annotated_side(width, height))
                )
            ready.append(Prepared(geometry, canvas, item.options, keep))
        return ready


def padded_batch_size(size: int, largest: int) -> int:
    """The next power of two at or above `size`, at most `largest` (which is always allowed)."""
    return min(1 << (size - 1).bit_length(), largest) if size < largest else size
