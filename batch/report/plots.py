"""The report's plots, drawn by matplotlib (Agg, no display) as SVG and embedded as `data:` URIs.
Text is drawn as paths (matplotlib's default `svg.fonttype`), so no font is needed to view them."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, also inside a Lambda or a container
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from batch.report.aggregate import CONF_BINS, HEIGHT_BINS, PERSON_BINS, VISIBLE_CONF, JobStats

_BAR = "#3b6ea5"
_MISS = "#c8553d"


def _svg(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def persons_per_image(stats: JobStats) -> str:
    figure, axes = plt.subplots(figsize=(6, 3.2))
    labels = [str(i) for i in range(PERSON_BINS - 1)] + [f"{PERSON_BINS - 1}+"]
    axes.bar(labels, stats.person_histogram, color=_BAR)
    axes.set_xlabel("persons detected")
    axes.set_ylabel("images")
    axes.set_title(f"Persons per image ({stats.ok:,} results)")
    axes.tick_params(axis="x", labelsize=7)
    return _svg(figure)


def joint_confidence(stats: JobStats) -> str:
    """Mean confidence and the share found (>= VISIBLE_CONF) per joint, in the model's keypoint order."""
    names = list(stats.joints)
    height = max(3.0, 0.28 * len(names) + 1.2)
    figure, axes = plt.subplots(figsize=(6, height))
    if names:
        y = np.arange(len(names))
        means = [stats.joints[n].mean_confidence for n in names]
        found = [stats.joints[n].found_rate for n in names]
        axes.barh(y - 0.2, means, height=0.4, color=_BAR, label="mean confidence")
        axes.barh(y + 0.2, found, height=0.4, color=_MISS, label=f"share with confidence >= {VISIBLE_CONF}")
        axes.set_yticks(y, names, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.legend(loc="lower right", fontsize=7)
    else:
        axes.text(0.5, 0.5, "no persons detected", ha="center", va="center")
    axes.set_title("Keypoint confidence per joint (over all detected persons)")
    return _svg(figure)


def joint_distribution(stats: JobStats) -> str:
    """Confidence histogram per joint as a heat map: rows joints, columns confidence bins."""
    names = list(stats.joints)
    figure, axes = plt.subplots(figsize=(6, max(3.0, 0.28 * len(names) + 1.2)))
    if names:
        counts = np.array([stats.joints[n].histogram for n in names], dtype=float)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = axes.imshow(shares, aspect="auto", cmap="viridis", vmin=0, vmax=1, extent=(0, 1, len(names), 0))
        axes.set_yticks(np.arange(len(names)) + 0.5, names, fontsize=8)
        axes.set_xticks(np.linspace(0, 1, CONF_BINS // 2 + 1))
        axes.set_xlabel("keypoint confidence")
        figure.colorbar(image, ax=axes, label="share of persons")
    else:
        axes.text(0.5, 0.5, "no persons detected", ha="center", va="center")
    axes.set_title("Confidence distribution per joint")
    return _svg(figure)


def box_heights(stats: JobStats) -> str:
    figure, axes = plt.subplots(figsize=(6, 3.2))
    edges = np.linspace(0, 1, HEIGHT_BINS + 1)
    axes.bar(edges[:-1], stats.height_histogram, width=1 / HEIGHT_BINS, align="edge", color=_BAR, edgecolor="white")
    axes.set_xlabel("person box height / image height")
    axes.set_ylabel("persons")
    axes.set_title(f"Box sizes ({stats.persons:,} persons)")
    return _svg(figure)


def persons_per_second(values: np.ndarray, title: str) -> str:
    """One video: mean persons per posed frame in each second of video."""
    figure, axes = plt.subplots(figsize=(6, 1.8))
    if len(values):
        seconds = np.arange(len(values))
        axes.step(seconds, values, where="post", color=_BAR)
        axes.fill_between(seconds, np.nan_to_num(values), step="post", color=_BAR, alpha=0.25)
        axes.set_xlim(0, max(len(values), 1))
    axes.set_ylim(bottom=0)
    axes.set_xlabel("second of video")
    axes.set_ylabel("persons")
    axes.set_title(title, fontsize=9)
    return _svg(figure)


def error_codes(stats: JobStats) -> str | None:
    if not stats.error_codes:
        return None
    codes = stats.error_codes.most_common(15)
    figure, axes = plt.subplots(figsize=(6, max(2.0, 0.35 * len(codes) + 1)))
    axes.barh([c for c, _ in codes], [n for _, n in codes], color=_MISS)
    axes.invert_yaxis()
    axes.set_xlabel("images")
    axes.set_title("Failures by error code")
    return _svg(figure)
