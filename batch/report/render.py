"""The report as one self-contained HTML page: inline CSS, every image a `data:` URI, no script, nothing
fetched from the network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Any

from batch.report import plots
from batch.report.aggregate import JobStats
from batch.report.videos import VideoStats

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666;font-size:13px}.note{background:#fff7e0;border:1px solid #e8d9a8;padding:8px 12px;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 16px}
.card b{display:block;font-size:24px}.card.bad b{color:#b3261e}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plots img{background:#fff;border:1px solid #ddd;max-width:100%}
.sheet{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px}
figure.fail{border-color:#b3261e}figure img{width:100%;height:170px;object-fit:contain;background:#eee}
figcaption{font-size:12px;word-break:break-all}
.video{display:flex;gap:12px;align-items:center;background:#fff;border:1px solid #ddd;border-radius:4px;
padding:8px;margin:8px 0}.video img.poster{width:240px;height:170px;object-fit:contain;background:#eee}
.video .facts{font-size:13px;min-width:220px}.nothumb{height:170px;display:flex;align-items:center;
justify-content:center;background:#eee;color:#888;font-size:12px;text-align:center}
table{border-collapse:collapse;font-size:13px;background:#fff}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
"""


# Nothing may load from anywhere but the page itself: a browser refuses (and logs) any outside fetch.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass
class ReportPage:
    location: str
    stats: JobStats
    summary: dict[str, Any] | None
    sample_thumbnails: dict[str, str | None]
    failure_thumbnails: dict[str, str | None]
    inputs_known: bool
    videos: VideoStats | None = None
    posters: dict[str, str | None] | None = None


def _card(label: str, value: Any, bad: bool = False) -> str:
    shown = f"{value:,}" if isinstance(value, int) else escape(str(value))
    return f'<div class="card{" bad" if bad else ""}"><b>{shown}</b>{escape(label)}</div>'


def _figure(rel: str, uri: str | None, caption: str, *, failed: bool = False, why: str = "") -> str:
    image = (
        f'<img src="{uri}" alt="{escape(rel)}">' if uri else f'<div class="nothumb">{escape(why or "no image")}</div>'
    )
    css = ' class="fail"' if failed else ""
    return f"<figure{css}>{image}<figcaption><b>{escape(rel)}</b><br>{escape(caption)}</figcaption></figure>"


def _timings(summary: dict[str, Any] | None) -> str:
    rows = []
    if summary:
        for key in ("job_name", "status", "failure_reason", "mode", "input", "output"):
            if summary.get(key):
                rows.append((key, summary[key]))
        rows.extend((k, v) for k, v in (summary.get("timings") or {}).items() if v is not None)
    if not rows:
        return '<p class="muted">No _SUMMARY.json beside the records: job timings are unknown.</p>'
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def render(page: ReportPage) -> bytes:
    stats = page.stats
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>PoseBatch report: {escape(page.location)}</title><style>{_CSS}</style></head><body>",
        f"<h1>PoseBatch job report</h1><div class=muted>{escape(page.location)} &middot; built "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} &middot; model(s): "
        f"{escape(', '.join(stats.models) or 'none')}</div>",
        "<h2>Counts</h2><div class=cards>",
        _card("images", stats.images),
        _card("posed", stats.ok),
        _card("failed", stats.failed, bad=stats.failed > 0),
        _card("persons", stats.persons),
        _card("images without a person", int(stats.person_histogram[0])),
        *_video_cards(page.videos),
        "</div>",
        "<h2>Job</h2>",
        _timings(page.summary),
        '<p class="note">Per-image latency: not shown. The records (PoseResult) carry no timing; '
        "_SUMMARY.json holds job-level timings only (above, Batch Transform jobs).</p>",
        "<h2>Plots</h2><div class=plots>",
    ]
    for uri in (
        plots.persons_per_image(stats),
        plots.box_heights(stats),
        plots.joint_confidence(stats),
        plots.joint_distribution(stats),
        plots.error_codes(stats),
    ):
        if uri:
            parts.append(f'<img class=plot src="{uri}" alt="plot">')
    parts.append("</div>")
    parts.append(_failures(page))
    parts.append(_videos(page))
    parts.append(f"<h2>Contact sheet: the first {len(stats.sample):,} results (annotated)</h2><div class=sheet>")
    for rel, persons in stats.sample:
        parts.append(_figure(rel, page.sample_thumbnails.get(rel), f"{persons} person(s)", why="no annotated image"))
    parts.append("</div></body></html>")
    return "".join(parts).encode("utf-8")


def _failures(page: ReportPage) -> str:
    stats = page.stats
    if not stats.failed:
        return "<h2>Failures</h2><p>None: every image has a result.</p>"
    codes = ", ".join(f"{escape(code)}: {n:,}" for code, n in stats.error_codes.most_common())
    why = "input image not readable" if page.inputs_known else "input location unknown (pass --input)"
    parts = [f"<h2>Failures ({stats.failed:,})</h2><p>{codes}</p><div class=sheet>"]
    for failure in stats.failures:
        caption = f"{failure.code}: {failure.message}"
        parts.append(_figure(failure.rel, page.failure_thumbnails.get(failure.rel), caption, failed=True, why=why))
    parts.append("</div>")
    if stats.failures_not_listed:
        parts.append(f"<p>&hellip; and {stats.failures_not_listed:,} more failures not shown.</p>")
    return "".join(parts)


def _video_cards(videos: VideoStats | None) -> list[str]:
    if videos is None or not videos.videos:
        return []
    return [
        _card("videos", videos.videos),
        _card("videos failed", videos.failed, bad=videos.failed > 0),
        _card("video frames posed", videos.frames_posed),
    ]


def _videos(page: ReportPage) -> str:
    videos = page.videos
    if videos is None or not videos.videos:
        return ""
    posters = page.posters or {}
    parts = [f"<h2>Videos ({videos.videos:,})</h2>"]
    for entry in videos.entries:
        header = entry.header
        poster = posters.get(entry.rel)
        image = f'<img class=poster src="{poster}" alt="poster">' if poster else '<div class="nothumb">no poster</div>'
        duration = header.get("duration")
        facts = [
            f"<b>{escape(entry.rel)}</b>",
            f"{header.get('frames_posed', 0):,} of {header.get('frames_decoded', 0):,} frames posed",
            f"duration {duration:,.2f} s" if isinstance(duration, int | float) else "duration unknown",
            f"{header.get('width')}x{header.get('height')}, {escape(str(header.get('codec')))}",
            f"{(header.get('tracking') or {}).get('tracks', 0):,} track(s)",
        ]
        error = header.get("error")
        if isinstance(error, dict):
            said = f"{error.get('code')}: {error.get('message')}"
            facts.append(f'<span style="color:#b3261e">{escape(said)}</span>')
        plot = plots.persons_per_second(entry.persons_per_second, "Persons per second (mean per posed frame)")
        parts.append(
            f"<div class=video>{image}<div class=facts>{'<br>'.join(facts)}</div>"
            f'<img class=plot src="{plot}" alt="persons per second"></div>'
        )
    if videos.not_shown:
        parts.append(f"<p>&hellip; and {videos.not_shown:,} more videos not shown.</p>")
    for failure in videos.failures:
        parts.append(
            f'<div class=video><div class="nothumb">failed</div><div class=facts><b>{escape(failure.rel)}</b><br>'
            f'<span style="color:#b3261e">{escape(failure.code)}: {escape(failure.message)}</span></div></div>'
        )
    return "".join(parts)
