"""COCO keypoint evaluation of a job's outputs: pycocotools' OKS evaluation (`COCOeval`, iouType
"keypoints") of the keypoint records against COCO-format annotations, plus per-joint figures.

Records are matched to `images[].file_name` by their relative key (`keypoints/<rel>.json` -> `<rel>`), first
as the whole path, then by the base name. Every annotated image counts: one without a record (or with an
error record) is scored as an image where nothing was detected, so a partial job cannot look better than it
is (`only_matched=True` scores the matched images alone).

Per joint j, over the ground-truth persons that COCOeval matched to a detection at OKS >= 0.5 (area "all",
crowd annotations ignored), and each of their keypoints labelled in the annotation (v > 0):
    KS_j   = exp(-d^2 / (2 * area * k_j^2)),  k_j = 2 * sigma_j   (COCO's per-keypoint similarity, 0..1)
    mean_ks = mean of KS_j;  pck = share with KS_j >= 0.5;  labelled = how many such keypoints
with d the distance from the predicted keypoint to the annotated one, area the annotation's segment area and
sigma_j the keypoint's OKS constant. A joint the model misses or misplaces has a low mean_ks and pck.

Sigmas follow Ultralytics' validator: the category's `kpt_oks_sigmas` when it carries them (the training
evaluation writes the dataset's there; pycocotools ignores the extra field), else COCO's for 17 keypoints,
else 1/K each. `Evaluation.sigmas` says which were used.
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO  # the `eval` extra; the command says so when it is missing
from pycocotools.cocoeval import COCOeval

from batch.report.sources import OutputSource

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
PCK_THRESHOLD = 0.5
MATCH_OKS = 0.5
MAX_LISTED = 20
COCO_SIGMAS = (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)


class EvaluationError(ValueError):
    """The annotations or the records cannot be evaluated (said why, for a person)."""


@dataclass
class JointFigure:
    name: str
    labelled: int
    mean_ks: float | None
    pck: float | None


@dataclass
class Evaluation:
    stats: dict[str, float]
    joints: list[JointFigure]
    annotated_images: int
    records: int
    matched: int
    error_records: int
    detections: int
    missing: int  # annotated images with no record at all
    unmatched_examples: list[str] = field(default_factory=list)  # records naming no annotated image
    unmatched: int = 0
    sigmas: str = "coco"  # which OKS sigmas: "dataset" (the category's kpt_oks_sigmas), "coco" or "uniform"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quiet() -> contextlib.redirect_stdout[io.StringIO]:
    return contextlib.redirect_stdout(io.StringIO())  # pycocotools prints progress on stdout


def load_annotations(path: Path) -> Any:
    try:
        with _quiet():
            gt = COCO(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvaluationError(f"cannot read COCO annotations from {path}: {exc}") from None
    if not gt.getCatIds() or not any("keypoints" in c for c in gt.loadCats(gt.getCatIds())):
        raise EvaluationError(f"{path} has no keypoint category (COCO person_keypoints format expected)")
    return gt


def oks_sigmas(gt: Any) -> tuple[list[float], str]:
    """The OKS sigmas by Ultralytics' validator rule (module docstring) and which rule gave them."""
    category = gt.loadCats(gt.getCatIds())[0]
    count = len(category.get("keypoints") or []) or len(COCO_SIGMAS)
    given = category.get("kpt_oks_sigmas")
    if isinstance(given, list) and len(given) == count and all(isinstance(v, int | float) and v > 0 for v in given):
        return [float(v) for v in given], "dataset"
    if count == len(COCO_SIGMAS):
        return [v / 10.0 for v in COCO_SIGMAS], "coco"
    return [1.0 / count] * count, "uniform"


def _detections(gt: Any, source: OutputSource) -> tuple[list[dict[str, Any]], Evaluation]:
    by_path = {info["file_name"]: image_id for image_id, info in gt.imgs.items()}
    by_name = {posixpath.basename(name): image_id for name, image_id in by_path.items()}
    category = gt.getCatIds()[0]
    detections: list[dict[str, Any]] = []
    seen: set[int] = set()
    summary = Evaluation({}, [], len(gt.imgs), 0, 0, 0, 0, 0)
    for rel, raw in source.records():
        summary.records += 1
        image_id = by_path.get(rel, by_name.get(posixpath.basename(rel)))
        if image_id is None:
            summary.unmatched += 1
            if len(summary.unmatched_examples) < MAX_LISTED:
                summary.unmatched_examples.append(rel)
            continue
        summary.matched += 1
        seen.add(image_id)
        found = _persons(raw, image_id, category)
        if found is None:
            summary.error_records += 1
        else:
            detections.extend(found)
    summary.detections = len(detections)
    summary.missing = len(gt.imgs) - len(seen)
    return detections, summary


def _persons(raw: bytes, image_id: int, category: int) -> list[dict[str, Any]] | None:
    """COCO results for one record; None for an error record or one that is not a valid result."""
    try:
        record = json.loads(raw)
        return [
            {
                "image_id": image_id,
                "category_id": category,
                "keypoints": [float(v) for point in person["keypoints"] for v in point[:3]],
                "score": float(person["score"]),
            }
            for person in record["persons"]
        ]
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def evaluate(annotations: Path, source: OutputSource, *, only_matched: bool = False) -> Evaluation:
    gt = load_annotations(annotations)
    sigmas, rule = oks_sigmas(gt)
    detections, result = _detections(gt, source)
    result.sigmas = rule
    if not result.matched:
        raise EvaluationError(
            f"no record under {source.location} matches an image of {annotations} by file name "
            f"({result.records} records; e.g. {result.unmatched_examples[:3]})"
        )
    if not detections:
        result.stats = dict.fromkeys(STAT_NAMES, 0.0)
        return result
    with _quiet():
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
        if only_matched:
            evaluator.params.imgIds = sorted({d["image_id"] for d in detections})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    result.stats = {name: round(float(v), 6) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)}
    result.joints = per_joint(evaluator, gt, dt)
    return result


def per_joint(evaluator: Any, gt: Any, dt: Any) -> list[JointFigure]:
    """Per-keypoint similarity of the detections COCOeval matched at OKS >= 0.5 (see the module docstring)."""
    params = evaluator.params
    sigmas = np.asarray(params.kpt_oks_sigmas, dtype=float)
    names = gt.loadCats(gt.getCatIds())[0].get("keypoints") or [f"keypoint_{i}" for i in range(len(sigmas))]
    threshold = int(np.argmin(np.abs(np.asarray(params.iouThrs) - MATCH_OKS)))
    similarities: list[list[float]] = [[] for _ in sigmas]
    for image in evaluator.evalImgs:
        if image is None or list(image["aRng"]) != list(params.areaRng[0]):
            continue
        for dt_id, gt_id, ignored in zip(
            image["dtIds"], image["dtMatches"][threshold], image["dtIgnore"][threshold], strict=True
        ):
            if not gt_id or ignored:
                continue
            truth = gt.anns[int(gt_id)]
            if truth.get("iscrowd"):
                continue
            g = np.asarray(truth["keypoints"], dtype=float).reshape(-1, 3)
            d = np.asarray(dt.anns[dt_id]["keypoints"], dtype=float).reshape(-1, 3)
            squared = ((d[:, :2] - g[:, :2]) ** 2).sum(axis=1)
            ks = np.exp(-squared / (2 * max(float(truth["area"]), np.spacing(1)) * (2 * sigmas) ** 2))
            for j in np.flatnonzero(g[:, 2] > 0):
                similarities[j].append(float(ks[j]))
    return [
        JointFigure(
            name=str(names[j]) if j < len(names) else f"keypoint_{j}",
            labelled=len(values),
            mean_ks=round(float(np.mean(values)), 4) if values else None,
            pck=round(float(np.mean(np.asarray(values) >= PCK_THRESHOLD)), 4) if values else None,
        )
        for j, values in enumerate(similarities)
    ]


def as_text(result: Evaluation) -> str:
    stats = result.stats
    lines = [
        "COCO keypoint evaluation (pycocotools COCOeval, OKS)",
        "  " + "  ".join(f"{name} {stats.get(name, 0.0):.3f}" for name in STAT_NAMES[:6]),
        f"  images annotated {result.annotated_images}, records {result.records}, matched {result.matched}, "
        f"error records {result.error_records}, without a record {result.missing}, unmatched records "
        f"{result.unmatched}, detections {result.detections}; OKS sigmas: {result.sigmas}",
    ]
    if result.unmatched_examples:
        lines.append("  records naming no annotated image, e.g.: " + ", ".join(result.unmatched_examples[:5]))
    if result.joints:
        lines.append(f"  per joint (GT persons matched at OKS >= {MATCH_OKS}): labelled  mean KS  PCK@KS>=0.5")
        for joint in result.joints:
            ks = "-" if joint.mean_ks is None else f"{joint.mean_ks:.3f}"
            pck = "-" if joint.pck is None else f"{joint.pck:.3f}"
            lines.append(f"    {joint.name:<16} {joint.labelled:>8}  {ks:>7}  {pck:>11}")
    return "\n".join(lines)
