"""Raw head output -> `PoseResult`: NMS (Ultralytics' own, on the output's device), then boxes and
keypoints mapped back to original pixels. The one place model output becomes our schema."""

from __future__ import annotations

import torch
from ultralytics.utils.nms import non_max_suppression

from batch.custom_attributes import InferenceOptions
from batch.inference.letterbox import Geometry
from batch.inference.model_source import ModelInfo
from batch.schema import ImageSize, Person, PoseResult, Thresholds


def detections(raw: torch.Tensor, options: InferenceOptions, info: ModelInfo) -> torch.Tensor:
    """(n, 6 + K*D) rows of [x1, y1, x2, y2, score, class, keypoints...] in canvas pixels, for one image."""
    (kept,) = non_max_suppression(
        raw.unsqueeze(0),
        options.conf,
        options.iou,
        max_det=options.max_det,
        nc=info.num_classes,
        end2end=info.end2end,
    )
    return kept


def to_result(rows: torch.Tensor, geometry: Geometry, options: InferenceOptions, info: ModelInfo) -> PoseResult:
    rows = rows.float().cpu()
    boxes = rows[:, :4].clone()
    keypoints = rows[:, 6:].reshape(rows.shape[0], info.num_keypoints, info.keypoint_dims).clone()
    for coords in (boxes[:, 0::2], keypoints[..., 0]):
        coords.sub_(geometry.left).div_(geometry.gain_x).clamp_(0, geometry.orig_w)
    for coords in (boxes[:, 1::2], keypoints[..., 1]):
        coords.sub_(geometry.top).div_(geometry.gain_y).clamp_(0, geometry.orig_h)
    if info.keypoint_dims == 2:  # models without visibility: report full confidence
        keypoints = torch.cat([keypoints, torch.ones_like(keypoints[..., :1])], dim=-1)
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
