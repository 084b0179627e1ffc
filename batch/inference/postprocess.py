"""Raw head output -> `PoseResult`s: Ultralytics' NMS rule, then boxes and keypoints mapped back to
original pixels. The one place model output becomes our schema.

A whole batch is post-processed with a handful of device operations and ONE device->host transfer:
the candidates above each image's confidence threshold are picked on the device, and NMS, the
mapping back and the records are made on the host. On a GPU this matters more than the arithmetic:
every torch call releases and re-takes the GIL, and with the event loop and the CPU pool busy in
Python, each re-take can wait for the interpreter's switch interval. Per image, Ultralytics'
`non_max_suppression` makes ~37 such calls and several device syncs; measured on an H200, a batch of
32 spent ~0.5 s there against 12 ms of forward (benchmarks/results/gpu-nvidia-h200-run1.json).

The rule is Ultralytics' own (`ultralytics.utils.nms.non_max_suppression`, best class per box,
class-aware via a `max_wh` offset, `max_nms` then `max_det` caps), with the same arithmetic: boxes
are converted to corners in the output's dtype before the rows are promoted to float32, as there.
On the CPU the results are identical to calling it per image (tests/inference/test_postprocess.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import xywh2xyxy

from batch.custom_attributes import InferenceOptions
from batch.inference.letterbox import Geometry
from batch.inference.model_source import ModelInfo
from batch.schema import ImageSize, Person, PoseResult, Thresholds

MAX_NMS = 30000  # Ultralytics' defaults: candidates kept for NMS, and the per-class box offset
MAX_WH = 7680


def detections_batch(raw: torch.Tensor, options: Sequence[InferenceOptions], info: ModelInfo) -> list[np.ndarray]:
    """Per image of `raw` (B, 4 + classes + K*D, anchors), its (n, 6 + K*D) float32 rows
    [x1, y1, x2, y2, score, class, keypoints...] in canvas pixels, after NMS."""
    if info.end2end:  # end-to-end heads need no NMS: Ultralytics' own filter, per image
        return [_end2end(raw[i], o, info) for i, o in enumerate(options)]
    nc = info.num_classes
    scores, classes = raw[:, 4 : 4 + nc].max(1)  # (B, anchors)
    # In the output's dtype, as Ultralytics compares (a float16 output rounds the threshold to float16).
    thresholds = torch.tensor([o.conf for o in options], dtype=scores.dtype).to(raw.device, non_blocking=True)
    image, anchor = (scores > thresholds[:, None]).nonzero(as_tuple=True)
    picked = raw.transpose(1, 2)[image, anchor]  # (M, channels)
    rows = torch.cat(
        (
            xywh2xyxy(picked[:, :4]),
            scores[image, anchor, None],
            classes[image, anchor, None].float(),  # float32 from here on, as in Ultralytics' cat
            picked[:, 4 + nc :],
            image[:, None].float(),
        ),
        1,
    )
    host = rows.cpu().numpy()  # the one transfer (and sync) of the batch
    counts = np.bincount(host[:, -1].astype(np.int64), minlength=len(options))
    out: list[np.ndarray] = []
    start = 0
    for count, option in zip(counts.tolist(), options, strict=True):
        out.append(_nms(host[start : start + count, :-1], option))
        start += count
    return out


def _nms(x: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Ultralytics' per-image steps after the confidence filter, on the host."""
    if not len(x):
        return x
    if len(x) > MAX_NMS:
        x = x[np.argsort(-x[:, 4], kind="stable")[:MAX_NMS]]
    boxes = torch.from_numpy(x[:, :4] + x[:, 5:6] * MAX_WH)
    keep = torchvision.ops.nms(boxes, torch.from_numpy(x[:, 4]), options.iou)[: options.max_det]
    return x[keep.numpy()]


def _end2end(raw: torch.Tensor, options: InferenceOptions, info: ModelInfo) -> np.ndarray:
    (kept,) = non_max_suppression(
        raw.unsqueeze(0), options.conf, options.iou, max_det=options.max_det, nc=info.num_classes, end2end=True
    )
    return np.asarray(kept.float().cpu().numpy(), dtype=np.float32)


def to_result(rows: np.ndarray, geometry: Geometry, options: InferenceOptions, info: ModelInfo) -> PoseResult:
    """`rows` from `detections_batch`, mapped from the canvas back to original pixels (float32, as before)."""
    n = rows.shape[0]
    boxes = rows[:, :4].copy()
    keypoints = rows[:, 6:].reshape(n, info.num_keypoints, info.keypoint_dims).copy()
    for coords in (boxes[:, 0::2], keypoints[..., 0]):
        np.clip((coords - geometry.left) / geometry.gain_x, 0, geometry.orig_w, out=coords)
    for coords in (boxes[:, 1::2], keypoints[..., 1]):
        np.clip((coords - geometry.top) / geometry.gain_y, 0, geometry.orig_h, out=coords)
    if info.keypoint_dims == 2:  # models without visibility: report full confidence
        keypoints = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], axis=-1)
    persons = [
        Person(
            score=round(float(score), 5),
            box=(round(b[0], 2), round(b[1], 2), round(b[2], 2), round(b[3], 2)),
            keypoints=[(round(k[0], 2), round(k[1], 2), round(k[2], 5)) for k in kps],
        )
        for score, b, kps in zip(rows[:, 4].tolist(), boxes.tolist(), keypoints.tolist(), strict=True)
    ]
    return PoseResult(
        model=info.name,
        image=ImageSize(width=geometry.orig_w, height=geometry.orig_h),
        keypoint_names=list(info.keypoint_names),
        skeleton=list(info.skeleton),
        persons=persons,
        thresholds=Thresholds(conf=options.conf, iou=options.iou, max_det=options.max_det, imgsz=options.imgsz),
    )
