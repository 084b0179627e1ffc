"""`_REPORT.html`: a self-contained visual report of a job's outputs, built in one streaming pass.

    sources.py     where the outputs live (local folder or S3 prefix; mirrored or predict's flat layout)
    aggregate.py   bounded statistics over the records (histograms, per-joint sums, first-N samples)
    videos.py      each video's header, persons per second and poster frame (its JSON Lines streamed)
    thumbnails.py  data-URI thumbnails, only for the sampled records
    plots.py       matplotlib figures as SVG
    render.py      the HTML page

`build_report(location)` is what the CLI, `predict` and a job's finaliser call at the end of a job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batch.report.sources import InputReader, OutputSource, input_reader, open_source

if TYPE_CHECKING:  # numpy, Pillow and matplotlib load only when a report is made: the CLI starts fast
    from batch.report.aggregate import JobStats
    from batch.report.videos import VideoStats

log = logging.getLogger(__name__)

DEFAULT_THUMBNAILS = 48
DEFAULT_MAX_FAILURES = 200


@dataclass(frozen=True)
class ReportOutcome:
    location: str  # where _REPORT.html was written
    stats: JobStats
    seconds: float
    videos: VideoStats


def collect(source: OutputSource, *, sample_size: int, max_failures: int) -> JobStats:
    """The one streaming pass over every record."""
    from batch.report.aggregate import JobStats

    stats = JobStats(sample_size=sample_size, max_failures=max_failures)
    for rel, raw in source.records():
        stats.add(rel, raw)
    return stats


def build_report(
    location: str | OutputSource,
    *,
    inputs: str | InputReader | None = None,
    sample_size: int = DEFAULT_THUMBNAILS,
    max_failures: int = DEFAULT_MAX_FAILURES,
    s3: Any = None,
    workers: int = 32,
) -> ReportOutcome:
    """Write `_REPORT.html` into a job's output folder or S3 prefix and return where it went.

    `inputs` locates the input images for failure thumbnails: a folder or S3 prefix, or a function
    rel -> bytes; by default the `input` of the job's `_SUMMARY.json` (Batch Transform) when it is an
    `s3://` prefix, else none.
    `workers`: S3 reads in flight while streaming the records (one GET per record).
    """
    from batch.report.render import ReportPage, render
    from batch.report.thumbnails import thumbnail, thumbnails
    from batch.report.videos import POSTER_BYTES, VideoStats, poster_jpeg

    started = time.monotonic()
    source = open_source(location, s3=s3, workers=workers) if isinstance(location, str) else location
    summary = source.summary()
    stats = collect(source, sample_size=sample_size, max_failures=max_failures)
    videos = VideoStats()
    for rel, lines in source.videos():
        videos.add(rel, lines)
    posters = {e.rel: thumbnail(poster_jpeg(source.annotated_start(e.rel, POSTER_BYTES))) for e in videos.entries}
    if inputs is None and summary and isinstance(summary.get("input"), str) and summary["input"].startswith("s3://"):
        # Only a job's S3 input: a summary is data anyone who writes under the output can forge, and
        # `"input": "/"` must not make the report read (and upload thumbnails of) local files.
        inputs = summary["input"]
    read_input = input_reader(inputs, s3=s3) if isinstance(inputs, str) or inputs is None else inputs
    page = ReportPage(
        location=source.location,
        stats=stats,
        summary=summary,
        sample_thumbnails=thumbnails((rel for rel, _ in stats.sample), source.annotated),
        failure_thumbnails=thumbnails((f.rel for f in stats.failures), read_input),
        inputs_known=read_input is not None,
        videos=videos,
        posters=posters,
    )
    written = source.write_report(render(page))
    seconds = time.monotonic() - started
    log.info("report of %d records written to %s in %.1f s", stats.images, written, seconds)
    return ReportOutcome(written, stats, seconds, videos)


__all__ = ["DEFAULT_MAX_FAILURES", "DEFAULT_THUMBNAILS", "ReportOutcome", "build_report", "collect"]
