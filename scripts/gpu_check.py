#!/usr/bin/env python3
"""The GPU check in one command, for a bare CUDA machine without a package registry or ../shared.

  scripts/gpu-check --prepare          (here, with the registry) fill .gpu-kit/: wheels, weights, COCO
  scripts/gpu-check                    (on the GPU machine) install from .gpu-kit/, then measure

The check installs the kit's wheels with `pip install --no-index --no-deps --target` into a scratch
folder (nothing touches the machine's own packages), then runs, with the torch backend on CUDA (FP16,
nvJPEG batch decode, dynamic batching):
  1. benchmarks/throughput.py on both sets (COCO-size images, 12 MP phone photos made on the spot);
  2. COCO-val-mini keypoint AP through the server (FP16), which must be >= 0.441, and per-image parity
     with Ultralytics' own FP16 predict on the GPU at reduced precision's tolerance (benchmarks/parity.py);
  3. that (b) measures the GPU and not the CPU: the same forward on the CPU, the GPU's utilisation
     during the benchmark (nvidia-smi), and b / CPU-forward;
and writes benchmarks/results/gpu-<device>.json. `--device cpu --count 16` runs the same steps on the
CPU (a dry run of the kit and the script, not a measurement).

The machine must already have Python 3.12, torch, torchvision, onnxruntime, opencv, Pillow and numpy;
the kit brings the rest (for CPython 3.12, manylinux x86_64; `--python-version` for another).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
KIT = REPO_ROOT / ".gpu-kit"
KIT_LIMIT_BYTES = 64 * 2**20
MIN_AP = 0.441

# What the project (serving, benchmark, local S3, AP) imports beyond the machine's torch, torchvision,
# onnxruntime, opencv, Pillow and numpy (and their own dependencies). Versions come from requirements/lock.txt.
# Left out on purpose: onnx/onnxslim/openvino (the CUDA path is torch) and matplotlib/polars/scipy, which
# ultralytics lists but does not import for predict (checked by the dry run, which runs without them).
WHEELS = [
    # serving (pillow-heif: HEIC/HEIF decoding, imported by the decoder)
    "ultralytics", "pillow-heif", "ultralytics-thop", "ultralytics-platform", "pydantic", "pydantic-core",
    "pydantic-settings",
    "annotated-types", "typing-inspection", "python-dotenv", "fastapi", "starlette", "annotated-doc", "uvicorn",
    "opentelemetry-api", "httpx", "httpcore", "nvidia-ml-py",
    "h11", "click", "anyio", "idna", "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six",
    "urllib3", "pyyaml", "psutil", "requests", "charset-normalizer", "certifi",
    # the benchmark's local S3 (moto in server mode) and the AP
    "moto", "werkzeug", "flask", "flask-cors", "itsdangerous", "blinker", "xmltodict", "responses",
    "cryptography", "cffi", "pycparser", "pycocotools",
]  # fmt: skip


def lock_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements" / "lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- preparation (with a registry) ----------------------------------------------------------------
def prepare(kit: Path, python_version: str) -> int:
    pins = lock_versions()
    missing = [name for name in WHEELS if normalise(name) not in pins]
    if missing:
        print(f"not pinned in requirements/lock.txt: {', '.join(missing)}", file=sys.stderr)
        return 2
    wheels = kit / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    tag = python_version.replace(".", "")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", python_version, "--implementation", "cp", "--abi", f"cp{tag}", "--abi", "abi3",
         "--abi", "none", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(wheels),
         *(f"{name}=={pins[normalise(name)]}" for name in WHEELS)],
        check=True,
    )  # fmt: skip
    (kit / "models").mkdir(exist_ok=True)
    shutil.copyfile(SHARED / "models" / "yolo11n-pose.pt", kit / "models" / "yolo11n-pose.pt")
    shutil.rmtree(kit / "coco-val-mini", ignore_errors=True)
    shutil.copytree(SHARED / "data" / "coco-val-mini", kit / "coco-val-mini")
    files = sorted(p for p in kit.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    total = sum(p.stat().st_size for p in files)
    manifest = {
        "python_version": python_version,
        "total_bytes": total,
        "files": {str(p.relative_to(kit)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    (kit / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    print(f"kit {kit}: {len(files)} files, {total / 2**20:.1f} MiB (limit {KIT_LIMIT_BYTES / 2**20:.0f} MiB)")
    return 0 if total < KIT_LIMIT_BYTES else 1


# --- the check (on the GPU machine) ---------------------------------------------------------------
def install(kit: Path, target: Path) -> None:
    """The kit's wheels into `target`, from the kit alone; they shadow nothing the machine has."""
    manifest = json.loads((kit / "MANIFEST.json").read_text())
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest["python_version"] != running:
        raise SystemExit(f"the kit is for Python {manifest['python_version']}, this is {running}")
    for name, digest in manifest["files"].items():
        if hashlib.sha256((kit / name).read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{name}: checksum differs from the kit's manifest (copied incompletely?)")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(target),
         *map(str, sorted((kit / "wheels").glob("*.whl")))],
        check=True,
    )  # fmt: skip


class GpuSampler:
    """GPU utilisation, sampled by nvidia-smi once a second during the benchmark (none on a CPU run)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))


def check(args: argparse.Namespace) -> int:
    kit: Path = args.kit
    site = args.target
    if not args.skip_install:
        print(f"installing the kit into {site} (no index) ...", flush=True)
        install(kit, site)
    sys.path[:0] = [str(site), str(REPO_ROOT)]
    model = kit / "models" / "yolo11n-pose.pt"
    scratch = Path(args.scratch)
    os.environ.update({
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(scratch / "ultralytics"),
        "POSE_MODEL": str(model),
        "POSE_BACKEND": "torch",  # the CUDA path; on the CPU dry run too (the kit has no ONNX exporter)
        "POSE_DEVICE": args.device,
        "POSE_ONNX_CACHE_DIR": str(scratch / "onnx"),
    })  # fmt: skip

    import torch

    from batch.inference.engine import PoseEngine
    from batch.local.container import ServingContainer
    from batch.settings import Settings
    from benchmarks import parity, throughput
    from benchmarks.coco_ap import keypoint_ap
    from benchmarks.modes import bench_forward

    on_gpu = args.device.startswith("cuda")
    device_name = torch.cuda.get_device_name(0) if on_gpu else platform.processor() or "cpu"
    print(f"device: {device_name}; torch {torch.__version__}", flush=True)

    bench_json = scratch / "bench.json"
    bench_args = ["--model", str(model), "--images", str(kit / "coco-val-mini" / "images"),
                  "--sets", args.sets, "--count", str(args.count), "--soak", "0", "--device", args.device,
                  "--photo-cache", str(scratch / "photos"), "--json", str(bench_json),
                  # The video row needs PyAV, whose 36 MB wheel does not fit the kit's 64 MiB: not run here.
                  "--video-frames", "0"]  # fmt: skip
    if args.instance_type:
        bench_args += ["--instance-type", args.instance_type]
    if args.price_per_hour is not None:
        bench_args += ["--price-per-hour", str(args.price_per_hour)]
    for option in ("backends", "phone_count", "naive_count"):
        if getattr(args, option):
            bench_args += ["--" + option.replace("_", "-"), str(getattr(args, option))]
    with GpuSampler() as sampler:
        code = throughput.main(bench_args)
    if code:
        return code
    bench = json.loads(bench_json.read_text())

    print("COCO-val-mini keypoint AP and parity with Ultralytics through the server ...", flush=True)
    container = ServingContainer(model_dir=scratch, environment={}, aws_environment={}).start(startup_timeout_s=300)
    try:
        ap = keypoint_ap(container.url, kit / "coco-val-mini")
        from ultralytics import YOLO

        coco = sorted((kit / "coco-val-mini" / "images").glob("*.jpg"))
        reference = YOLO(str(model))
        same = parity.check_server(
            container.url, reference, coco, bench["precision"], half=bench["precision"] == "f16", device=args.device
        )
    finally:
        container.stop()

    print("the same forward on the CPU, for comparison ...", flush=True)
    cpu_engine = PoseEngine.load(Settings.from_env({**os.environ, "POSE_DEVICE": "cpu"}))
    coco_bodies = [p.read_bytes() for p in sorted((kit / "coco-val-mini" / "images").glob("*.jpg"))[:16]]
    cpu_forward = bench_forward(cpu_engine, coco_bodies, 4 * cpu_engine.max_batch_size).images_per_second

    gpu_checks: dict[str, Any] = {"cpu_forward_images_per_second": round(cpu_forward, 2), "cpus": os.cpu_count()}
    for name, result in bench["sets"].items():
        b = result["modes"]["images"]["images_per_second"]
        d = result["modes"]["forward"]["images_per_second"]
        gpu_checks[name] = {
            "b_over_cpu_forward": round(b / cpu_forward, 2),
            "d_over_cpu_forward": round(d / cpu_forward, 2),
        }
    if sampler.samples:
        gpu_checks["gpu_utilisation_percent_during_benchmark"] = {
            "mean": round(sum(sampler.samples) / len(sampler.samples), 1),
            "max": max(sampler.samples),
            "samples": len(sampler.samples),
        }
    passed = {
        "server_on_the_device": str(bench["device"]).startswith(args.device.split(":")[0]),
        "fp16": (not on_gpu) or bench["precision"] == "f16",
        "ap": ap >= MIN_AP,
        "parity_with_ultralytics": same.passed,
        # On the GPU the forward must beat the same forward on the CPU by far, or (b)/(d) says nothing about it.
        "gpu_forward_beats_cpu": (not on_gpu) or all(gpu_checks[s]["d_over_cpu_forward"] >= 2 for s in bench["sets"]),
    }
    report = {
        "device": device_name,
        "dry_run": not on_gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "coco_keypoint_ap": round(ap, 4),
        "min_ap": MIN_AP,
        "parity_with_ultralytics": same.summary(),
        "gpu_checks": gpu_checks,
        "passed": passed,
        "benchmark": bench,
    }
    out = args.out or REPO_ROOT / "benchmarks" / "results" / f"gpu-{slug(device_name)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    shown = ("device", "coco_keypoint_ap", "parity_with_ultralytics", "gpu_checks", "passed")
    print(json.dumps({k: report[k] for k in shown}, indent=2))
    print(f"wrote {out}")
    return 0 if all(passed.values()) else 1


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="fill the kit (needs the registry and ../shared)")
    parser.add_argument("--kit", type=Path, default=KIT)
    parser.add_argument("--python-version", default="3.12", help="--prepare: the GPU machine's Python")
    parser.add_argument("--target", type=Path, default=Path("/tmp/posebatch-site"), help="where wheels install")
    parser.add_argument("--scratch", default="/tmp/posebatch-gpu-check", help="photos, caches, server folders")
    parser.add_argument("--skip-install", action="store_true", help="reuse --target from an earlier run")
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    parser.add_argument("--sets", default="coco,phones")
    parser.add_argument("--count", type=int, default=500, help="images per mode and set")
    parser.add_argument("--backends", help="variants compared side by side (benchmark syntax); the first is checked")
    parser.add_argument("--phone-count", type=int, default=0, help="images per mode, phones set (default: --count)")
    parser.add_argument("--naive-count", type=int, default=0, help="images for (a) (default: the set's count)")
    parser.add_argument("--instance-type", help="for the cost figures (e.g. ml.p5.48xlarge)")
    parser.add_argument(
        "--price-per-hour", type=float, help="USD per hour for the cost figures (one GPU's share of an 8-GPU one)"
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/gpu-<device>.json")
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare(args.kit, args.python_version)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
