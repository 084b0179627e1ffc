"""`--mode auto` (the default): which Batch Transform mode a job runs in, from the listing, and why.

- Any video: manifest mode, the one that poses videos (images mode refuses them).
- Any object larger than images mode can carry in one request (25 MB with 4 requests in flight, or the
  `--max-payload-mb` given): manifest mode, where the container reads each image from S3 itself.
  Images mode would keep those objects out of the job.
- From `AUTO_MANIFEST_FROM` images: manifest mode. That is the measured crossover (benchmarks/mode_choice.py,
  `benchmarks/results/mode-choice-crossover.json`): launch to `_SUMMARY.json` took as long in both modes at
  64 photos, images mode was 2-3 s ahead at 24 and 48, and from 64 on manifest mode was never slower beyond
  run-to-run noise, while its finaliser moved under 1 % of the bytes in a 25th to a 46th of the time.
- Below it: images mode, faster for small jobs and with nothing written before the job.

Explicit `--mode images` or `--mode manifest` is kept as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from batch.output_layout import is_video
from batch.transform.plan import Mode

ModeRequest = Literal["auto", "images", "manifest"]
AUTO_MANIFEST_FROM = 64  # images; the measured crossover (see the module)
_MIB = 1024 * 1024


@dataclass(frozen=True)
class ModeChoice:
    mode: Mode
    reason: str
    automatic: bool = True

    def describe(self) -> str:
        how = "chosen by --mode auto" if self.automatic else "as given"
        return f"{self.mode} mode ({how}: {self.reason})"


def choose_mode(requested: ModeRequest, sizes: dict[str, int], *, images_ceiling_mb: int) -> ModeChoice:
    """The mode for a job of objects of `sizes` (rel -> bytes); `images_ceiling_mb`: the largest object
    images mode can carry with this job's settings."""
    if requested != "auto":
        return ModeChoice(requested, "--mode " + requested, automatic=False)
    count = len(sizes)
    videos = sum(1 for rel in sizes if is_video(rel))
    if videos:
        return ModeChoice("manifest", f"{videos} of the {count} objects are videos, which manifest mode poses")
    too_large = sum(1 for size in sizes.values() if size > images_ceiling_mb * _MIB)
    if too_large:
        return ModeChoice(
            "manifest",
            f"{too_large} of the {count} objects are over {images_ceiling_mb} MB, more than images mode carries "
            "in one request; the container reads them from S3 itself",
        )
    if count >= AUTO_MANIFEST_FROM:
        return ModeChoice(
            "manifest",
            f"{count} images, at least {AUTO_MANIFEST_FROM}: from there manifest mode is as fast and its finaliser "
            "moves a fraction of the bytes (measured crossover, docs/batch-transform.md)",
        )
    return ModeChoice(
        "images",
        f"{count} images, fewer than {AUTO_MANIFEST_FROM}: images mode is faster for small jobs "
        "(measured crossover, docs/batch-transform.md)",
    )
