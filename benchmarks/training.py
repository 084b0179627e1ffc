"""Training in the container, measured against Ultralytics' own `train` in the same run.

    python -m benchmarks.training [--epochs 2] [--imgsz 320] [--rounds 2] [--out benchmarks/results/training-cpu.json]

The data: COCO-val-mini cut as in issue 23, 59 photos to train on and 20 held out (the 20 first by crc32 of the
file name), as a COCO keypoints folder. Two parts:

1. Speed: images/s of each epoch's training loop (validation excluded), the container (`container/serve
   train`, the /opt/ml layout, its own metrics lines) beside Ultralytics' `YOLO(...).train(...)` in a fresh
   process on the very data.yaml and arguments the container used (read back from its training.json), timed
   the same way (epoch start to epoch end). A first container job warms the page cache up and gives the
   arguments; then each round runs both at the same time (`--together`, the default), so that whatever else
   loads a shared machine loads both alike (`--no-together`: one after the other, the order alternating,
   for a machine of one's own). Overhead = 1 - container / Ultralytics, over the medians of each run's epochs
   after its first. The whole job's wall time is reported beside it.
2. What a short fine-tune keeps: COCO keypoint AP on the 20 held-out photos through the serving engine
   (`container/serve evaluate`, pycocotools), of the base checkpoint, of a one-epoch fine-tune (the issue's run)
   with PoseBatch's defaults and with Ultralytics' (`optimizer=auto`), and of the speed part's longer run.

Any device: the container takes every GPU there is; `--device` applies to the Ultralytics run only when given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "container" / "serve"
DEFAULT_COCO = REPO.parent / "shared" / "data" / "coco-val-mini"
DEFAULT_MODEL = REPO.parent / "shared" / "models" / "yolo11n-pose.pt"
HELD_OUT = 20
LOGS: Path | None = None  # --logs: every container's output, appended

# Ultralytics' own train, timed exactly as the container's EpochReporter times it.
PLAIN_TRAIN = textwrap.dedent(
    """
    import json, sys, time
    from ultralytics import YOLO
    args = json.loads(sys.argv[3])
    rates, started = [], [0.0]
    def start(trainer): started[0] = time.perf_counter()
    def end(trainer): rates.append(len(trainer.train_loader.dataset) / (time.perf_counter() - started[0]))
    model = YOLO(sys.argv[1], task="pose")
    model.add_callback("on_train_epoch_start", start)
    model.add_callback("on_train_epoch_end", end)
    model.train(data=sys.argv[2], **args)
    print("RATES " + json.dumps(rates), flush=True)
    """
)


def coco_folder(coco: Path, root: Path) -> Path:
    truth = json.loads((coco / "person_keypoints.json").read_text())
    images = sorted(truth["images"], key=lambda i: zlib.crc32(i["file_name"].encode()))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, part in (("val", images[:HELD_OUT]), ("train", images[HELD_OUT:])):
        ids = {i["id"] for i in part}
        subset = {**truth, "images": part, "annotations": [a for a in truth["annotations"] if a["image_id"] in ids]}
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(subset))
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for image in part:
            (root / "images" / split / image["file_name"]).symlink_to(coco / "images" / image["file_name"])
    return root


def _environment(**extra: str) -> dict[str, str]:
    """container/serve runs `python3`: this interpreter's, as the local stand-in arranges it."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PATH": path,
        "YOLO_OFFLINE": "1",
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def container_job(root: Path, dataset: Path, model: Path, hyperparameters: dict[str, str], name: str) -> dict[str, Any]:
    """One training job in the /opt/ml layout; its per-epoch images/s, wall time and what it wrote."""
    ml = root / name
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "data" / "model").mkdir(parents=True)
    (ml / "input" / "data" / "dataset").symlink_to(dataset)
    (ml / "input" / "data" / "model" / model.name).symlink_to(model)
    (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    started = time.perf_counter()
    done = subprocess.run(
        [str(SERVE), "train"],
        env=_environment(POSE_ML_ROOT=str(ml), TRAINING_JOB_NAME=name),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if LOGS is not None:
        with LOGS.open("a") as log:
            log.write(f"===== container {name} (exit {done.returncode}, {wall:.1f} s)\n{done.stdout}\n")
    if done.returncode != 0:
        raise RuntimeError(f"the container failed ({done.returncode}): {done.stdout[-3000:]}")
    from batch.training.metrics import parse_line

    lines = [parse_line(line) for line in done.stdout.splitlines() if "final=1" not in line]
    rates = [line["images_per_s"] for line in lines if "images_per_s" in line]
    summary = json.loads((ml / "output" / "data" / "training.json").read_text())
    return {"rates": rates, "wall_s": wall, "ml": ml, "arguments": summary["arguments"]}


def plain_train(model: Path, data_yaml: Path, arguments: dict[str, Any], project: Path) -> dict[str, Any]:
    arguments = {**arguments, "save_dir": str(project), "exist_ok": True}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_TRAIN, str(model), str(data_yaml), json.dumps(arguments)],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    rates = [json.loads(line[6:]) for line in done.stdout.splitlines() if line.startswith("RATES ")]
    if done.returncode != 0 or not rates:
        raise RuntimeError(f"Ultralytics' train failed ({done.returncode}): {done.stdout[-3000:]}{done.stderr[-2000:]}")
    return {"rates": rates[0], "wall_s": wall}


def evaluate(model_dir: Path, dataset: Path, baseline: Path | None, out: Path, imgsz: int) -> dict[str, Any]:
    command = [str(SERVE), "evaluate", "--model", str(model_dir), "--dataset", str(dataset), "--output", str(out),
               "--imgsz", str(imgsz), "--baseline", str(baseline or out / "none")]  # fmt: skip
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"evaluation failed: {done.stdout[-3000:]}")
    report: dict[str, Any] = json.loads((out / "evaluation.json").read_text())
    return report


def _median_after_first(rates: list[float]) -> float:
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", type=Path, default=DEFAULT_COCO)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs for the speed part")
    parser.add_argument(
        "--together",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run each pair at the same time (default; for a shared machine), else one after the other",
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "training-cpu.json")
    parser.add_argument("--logs", type=Path, help="append every container's output to this file")
    args = parser.parse_args(argv)
    global LOGS
    LOGS = args.logs

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else (platform.processor() or "cpu")
    with tempfile.TemporaryDirectory(prefix="posebatch-training-bench-") as scratch:
        root = Path(scratch)
        dataset = coco_folder(args.coco, root / "coco")
        hyper = {"epochs": str(args.epochs), "imgsz": str(args.imgsz), "batch": str(args.batch)}
        speed: list[dict[str, Any]] = []
        first_job = container_job(root, dataset, args.model, hyper, "job-0")  # also warms the page cache up
        data_yaml = first_job["ml"] / "work" / "dataset" / "converted" / "data.yaml"
        for round_ in range(args.rounds):
            plan = (
                lambda r=round_: container_job(root, dataset, args.model, hyper, f"job-{r + 1}"),
                lambda r=round_: plain_train(args.model, data_yaml, first_job["arguments"], root / f"plain-{r}"),
            )
            if args.together:  # both at once: whatever else loads the machine loads both alike
                with ThreadPoolExecutor(2) as pool:
                    job, plain = (future.result() for future in [pool.submit(plan[0]), pool.submit(plan[1])])
            elif round_ % 2:  # one after the other, Ultralytics first in odd rounds
                plain, job = plan[1](), plan[0]()
            else:
                job, plain = plan[0](), plan[1]()
            speed.append({"ultralytics": plain, "container": {k: job[k] for k in ("rates", "wall_s")}})
            print(f"round {round_ + 1}: Ultralytics {plain['rates']} img/s, container {job['rates']} img/s", flush=True)
        ours = statistics.median(_median_after_first(r["container"]["rates"]) for r in speed)
        theirs = statistics.median(_median_after_first(r["ultralytics"]["rates"]) for r in speed)
        result: dict[str, Any] = {
            "machine": {"device": device, "cpus": os.cpu_count(), "torch": torch.__version__},
            "data": f"COCO-val-mini, {HELD_OUT} held out; imgsz {args.imgsz}, batch {args.batch}",
            "epochs": args.epochs,
            "pairs_run_together": args.together,
            "speed": {
                "rounds": speed,
                "ultralytics_images_per_s": round(theirs, 3),
                "container_images_per_s": round(ours, 3),
                "overhead": round(1 - ours / theirs, 4),
                "container_wall_s": [round(r["container"]["wall_s"], 1) for r in speed],
                "ultralytics_wall_s": [round(r["ultralytics"]["wall_s"], 1) for r in speed],
            },
        }
        print(f"images/s per epoch: Ultralytics {theirs:.2f}, container {ours:.2f}: overhead {1 - ours / theirs:+.1%}")
        if not args.skip_accuracy:
            # The issue's run: one epoch, with PoseBatch's defaults and with Ultralytics' (optimizer=auto). One
            # epoch, because Ultralytics ships the best epoch: over more epochs its pick can hide the damage.
            short = {**hyper, "epochs": "1"}
            ours_job = container_job(root, dataset, args.model, short, "job-short")
            tuned = evaluate(ours_job["ml"] / "model", dataset, args.model, root / "eval-defaults", args.imgsz)
            auto = container_job(root, dataset, args.model, {**short, "optimizer": "auto"}, "job-auto")
            ultralytics_defaults = evaluate(auto["ml"] / "model", dataset, None, root / "eval-auto", args.imgsz)
            longer = evaluate(first_job["ml"] / "model", dataset, None, root / "eval-longer", args.imgsz)
            metrics = tuned["pose_metrics"]
            result["held_out_ap"] = {
                "images": tuned["images"],
                "instances": tuned["instances"],
                "oks_sigmas": tuned["oks_sigmas"],
                "imgsz": args.imgsz,
                "pretrained": metrics["baseline_ap"]["value"],
                "one_epoch_posebatch_defaults": metrics["ap"]["value"],
                "one_epoch_ultralytics_defaults": ultralytics_defaults["pose_metrics"]["ap"]["value"],
                f"{args.epochs}_epochs_posebatch_defaults": longer["pose_metrics"]["ap"]["value"],
                "defaults_applied": json.loads((ours_job["ml"] / "output/data/training.json").read_text())[
                    "finetune_defaults_applied"
                ],
            }
            print("held-out AP:", json.dumps(result["held_out_ap"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
