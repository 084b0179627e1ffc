"""A real headless Chromium driven over the DevTools protocol (aiohttp's websocket client): load a page,
collect every console message, uncaught exception and browser log entry, inspect the images, and take a
full-page screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

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
    problems: list[str] = field(default_factory=list)  # console errors/warnings, exceptions, log errors
    title: str = ""


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, timeout_s: float = 60, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout_s
        while True:
            message = await self.ws.receive_json(timeout=max(deadline - time.monotonic(), 0.01))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        return (await self.call("Runtime.evaluate", expression=expression))["result"]["value"]

    async def wait_event(self, method: str, timeout_s: float = 60) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout_s
        while True:
            message = await self.ws.receive_json(timeout=max(deadline - time.monotonic(), 0.01))
            self.events.append(message)
            if message.get("method") == method:
                return

    def problems(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry.get('level')} ({entry.get('source')}): {entry.get('text')}")
        return found


async def _check(port: int, url: str, screenshot: Path, width: int) -> PageCheck:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            for domain in ("Page", "Runtime", "Log"):
                await session.call(f"{domain}.enable")
            await session.call("Page.navigate", url=url)
            await session.wait_event("Page.loadEventFired")
            images = json.loads(await session.evaluate(_IMAGES_JS))
            resources = json.loads(await session.evaluate(_RESOURCES_JS))
            title = await session.evaluate("document.title")
            metrics = await session.call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"])
            await session.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
            shot = await session.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return PageCheck(images, resources, session.problems(), title)


def check_page(chromium: str, url: str, screenshot: Path, profile: Path, *, width: int = 1280) -> PageCheck:
    """Open `url` in a fresh headless Chromium and report what rendered; the browser is always stopped."""
    process = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace sandbox
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open its DevTools port (exit code {process.poll()})")
            time.sleep(0.1)  # polling a file the browser writes once, under a deadline
        port = int(port_file.read_text().splitlines()[0])
        return asyncio.run(asyncio.wait_for(_check(port, url, screenshot, width), timeout=120))
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
