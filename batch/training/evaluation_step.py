"""`container/serve evaluate`: the evaluation step, a SageMaker processing job on the training image.

    /opt/ml/processing/model/      the trained model (model.tar.gz, or a .pt with its keypoints.yaml)
    /opt/ml/processing/dataset/    the dataset it trained on (either layout); its validation split is scored
    /opt/ml/processing/baseline/   optional: the model to beat (the base checkpoint, or the latest approved
                                   package's model.tar.gz)
    /opt/ml/processing/evaluation/ evaluation.json (the Model Registry's model-quality form),
                                   ground_truth.json, and each model's records under records/<role>/

Both models pose every validation image through the serving engine itself (`PoseEngine`, the backend
serving picks, conf 0.001 as COCO's evaluation wants) and are scored by `batch.evaluation` (pycocotools OKS
AP), so the figure is what users get and what `pose-batch eval records/<role> --annotations
ground_truth.json` prints. OKS sigmas: Ultralytics' validator rule (the dataset's kpt_oks_sigmas, else
COCO's for 17 keypoints, else 1/K); evaluation.json says which.

Paths under /opt/ml are re-rooted at POSE_ML_ROOT (the local stand-in has no container filesystem).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.settings import JobSettings

log = logging.getLogger("batch.training.evaluation")

PROCESSING = "/opt/ml/processing"
CONCURRENCY = 16
EVALUATION_FILE = "evaluation.json"
GROUND_TRUTH_FILE = "ground_truth.json"
# COCO's keypoint evaluation: every detection down to a low confidence (as benchmarks/coco_ap.py).
EVAL_CONF, EVAL_IOU, EVAL_MAX_DET = 0.001, 0.7, 300


@dataclass(frozen=True)
class Scored:
    stats: dict[str, float] | None
    model: str | None
    reason: str | None = None  # why there is no score
    sigmas: str | None = None  # which OKS sigmas (batch.evaluation.oks_sigmas)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__)
    parser.add_argument("--model", default=f"{PROCESSING}/model")
    parser.add_argument("--dataset", default=f"{PROCESSING}/dataset")
    parser.add_argument("--baseline", default=f"{PROCESSING}/baseline", help="absent or empty: no baseline")
    parser.add_argument("--output", default=f"{PROCESSING}/evaluation")
    parser.add_argument("--imgsz", type=int, default=640, help="the size the model will be served at (POSE_IMGSZ)")
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--must-beat-baseline", action="store_true", help="gate.passed only when AP is above the baseline's"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = JobSettings.from_env()
    output = settings.ml_path(args.output)
    try:
        report = evaluate(
            model=settings.ml_path(args.model),
            dataset=settings.ml_path(args.dataset),
            baseline=settings.ml_path(args.baseline),
            output=output,
            imgsz=args.imgsz,
            split=args.split,
            must_beat_baseline=args.must_beat_baseline,
        )
    except Exception as exc:
        from batch.training import failure

        log.exception("evaluation failed")
        failure.write(settings.ml_root / "output" / "message", failure.reason(exc))
        return 1
    metrics = report["pose_metrics"]
    log.info("AP %.4f, baseline AP %s", metrics["ap"]["value"], metrics.get("baseline_ap", {}).get("value"))
    return 0


def evaluate(
    *,
    model: Path,
    dataset: Path,
    baseline: Path | None,
    output: Path,
    imgsz: int,
    split: str = "val",
    must_beat_baseline: bool = False,
) -> dict[str, Any]:
    from batch.datasets.check import prepare
    from batch.datasets.ground_truth import ground_truth

    work = output.parent / f".{output.name}-work"
    data_yaml, described = prepare(dataset, work / "dataset")
    truth = ground_truth(data_yaml, described, split)
    truth_path = truth.write(output / GROUND_TRUTH_FILE)
    checkpoint = _checkpoint(model, work / "model")
    if checkpoint is None:
        raise FileNotFoundError(f"no model to evaluate: {model} holds no .pt and no model.tar.gz")
    scored = _score("model", checkpoint, truth, truth_path, output, imgsz, described.num_keypoints)
    if scored.stats is None:
        raise ValueError(f"the model cannot be scored on this dataset: {scored.reason}")
    base_checkpoint = _checkpoint(baseline, work / "baseline") if baseline is not None else None
    base = (
        _score("baseline", base_checkpoint, truth, truth_path, output, imgsz, described.num_keypoints)
        if base_checkpoint is not None
        else Scored(None, None, "no baseline model given")
    )
    report = _report(scored, base, described, truth, split, imgsz, must_beat_baseline)
    output.mkdir(parents=True, exist_ok=True)
    (output / EVALUATION_FILE).write_text(json.dumps(report, indent=2))
    return report


def _checkpoint(location: Path, scratch: Path) -> Path | None:
    """The .pt in `location` (a folder or a file), unpacking a model.tar.gz; None when there is none."""
    if not location.exists():
        return None
    if location.is_file():
        candidates = [location]
    else:
        candidates = sorted(location.rglob("*.pt")) or sorted(location.rglob("*.tar.gz"))
    if not candidates:
        return None
    chosen = candidates[0]
    if not chosen.name.endswith(".tar.gz"):
        return chosen
    scratch.mkdir(parents=True, exist_ok=True)
    with tarfile.open(chosen, "r:gz") as tar:  # model.tar.gz: the .pt and its keypoints.yaml
        tar.extractall(scratch, filter="data")
    unpacked = sorted(scratch.rglob("*.pt"))
    return unpacked[0] if unpacked else None


def _score(
    role: str, checkpoint: Path, truth: Any, truth_path: Path, output: Path, imgsz: int, keypoints: int
) -> Scored:
    from batch.evaluation import evaluate as coco_evaluate
    from batch.inference.model_source import load_yolo
    from batch.report.sources import LocalSource

    count = int(load_yolo(str(checkpoint)).model.kpt_shape[0])
    if count != keypoints:
        return Scored(None, checkpoint.name, f"{checkpoint.name} has {count} keypoints, the dataset {keypoints}")
    records = output / "records" / role
    asyncio.run(_pose_all(checkpoint, truth.images, records, imgsz))
    result = coco_evaluate(truth_path, LocalSource(records))
    log.info("%s %s: AP %.4f over %d images", role, checkpoint.name, result.stats["AP"], result.annotated_images)
    return Scored(result.stats, checkpoint.name, sigmas=result.sigmas)


async def _pose_all(checkpoint: Path, images: dict[str, Path], records: Path, imgsz: int) -> None:
    from batch.custom_attributes import InferenceOptions
    from batch.inference.engine import PoseEngine
    from batch.output_layout import keypoints_key
    from batch.settings import Settings

    settings = Settings.from_env().updated(pose_model=str(checkpoint), imgsz=imgsz, model_dir=checkpoint.parent)
    engine = PoseEngine.load(settings)
    options = InferenceOptions(conf=EVAL_CONF, iou=EVAL_IOU, max_det=EVAL_MAX_DET, imgsz=imgsz)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str, path: Path) -> None:
        async with limit:
            prediction = await engine.predict(path.read_bytes(), options)
        target = records / keypoints_key(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(prediction.result.model_copy(update={"source": name}).model_dump_json(exclude_none=True))

    try:
        await asyncio.gather(*(one(name, path) for name, path in images.items()))
    finally:
        await engine.close()


def _report(
    model: Scored, baseline: Scored, dataset: Any, truth: Any, split: str, imgsz: int, must_beat: bool
) -> dict[str, Any]:
    """The Model Registry's model-quality form (`{"<kind>_metrics": {name: {"value": ...}}}`) plus context."""
    assert model.stats is not None
    metrics: dict[str, Any] = {name.lower(): {"value": value} for name, value in model.stats.items()}
    beats: bool | None = None
    if baseline.stats is not None:
        metrics["baseline_ap"] = {"value": baseline.stats["AP"]}
        metrics["baseline_ap50"] = {"value": baseline.stats["AP50"]}
        beats = model.stats["AP"] > baseline.stats["AP"]
    return {
        "pose_metrics": metrics,
        "model": model.model,
        "baseline": {"model": baseline.model, "ap": (baseline.stats or {}).get("AP"), "reason": baseline.reason},
        "gate": {
            "must_beat_baseline": must_beat,
            "beats_baseline": beats,
            "passed": bool(beats) if must_beat else True,
        },
        "oks_sigmas": model.sigmas,
        "split": split,
        "images": len(truth.images),
        "instances": sum(1 for a in truth.coco["annotations"] if a.get("num_keypoints") and not a.get("iscrowd")),
        "imgsz": imgsz,
        "dataset": dataset.summary(),
    }


if __name__ == "__main__":
    sys.exit(main())
