"""A real headless Chromium, the system's own (Debian's `chromium`), driven by Playwright: load a page,
collect every console error or warning, uncaught exception and failed load, inspect the images, and take a
full-page screenshot. Playwright never downloads a browser here (`executable_path`)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Error, Request, sync_playwright

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Nothing but the page: no updates, sync, field trials or QUIC probes that could reach out or log.
QUIET = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# What the page reports about each <img>: loaded (complete with pixels), size on screen, kind of source.
_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, loaded: i.complete && i.naturalWidth > 0, width: i.getBoundingClientRect().width,
  cls: i.className, scheme: i.src.split(':')[0], type: i.src.slice(5, i.src.indexOf(';'))})))"""
_RESOURCES_JS = "JSON.stringify(performance.getEntriesByType('resource').map(e => e.name))"


def find_chromium() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


@dataclass
class PageCheck:
    images: list[dict[str, Any]]
    resources: list[str]
    problems: list[str] = field(default_factory=list)  # console errors/warnings, exceptions, failed loads
    title: str = ""


def check_page(chromium: str, url: str, screenshot: Path, *, width: int = 1280, timeout_s: float = 60) -> PageCheck:
    """Open `url` in a fresh headless Chromium and report what rendered; the browser is always closed."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning", "assert"):
            problems.append(f"console.{message.type}: {message.text}")

    def on_error(error: Error) -> None:
        problems.append(f"exception: {error.message}")

    def on_failed(request: Request) -> None:
        problems.append(f"failed load: {request.url}: {request.failure}")

    with sync_playwright() as playwright:
        # The sandbox needs user namespaces, which root in a container lacks: Playwright then passes --no-sandbox.
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, chromium_sandbox=os.geteuid() != 0, args=QUIET
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(timeout_s * 1000)
            page.on("console", on_console)
            page.on("pageerror", on_error)
            page.on("requestfailed", on_failed)
            page.goto(url, wait_until="load")
            images = json.loads(page.evaluate(_IMAGES_JS))
            resources = json.loads(page.evaluate(_RESOURCES_JS))
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return PageCheck(images, resources, problems, title)
