"""Progress while a command waits (`transform --wait`, `status --wait`, `submit --wait`): a bar on a
terminal; anywhere else (CI logs, CloudShell, `nohup`, a pipe) one plain line at the start, one every
30 s and one at the end, so an hour-long job writes about 120 lines instead of a redrawn bar's thousands.

    with ProgressDisplay(total=1000, desc="job-1") as progress:
        progress.update_to(120)          # images done so far
        progress.set_status("InProgress")

One rate either way: images done per second since the start (tqdm's smoothing=0).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

PLAIN_INTERVAL_S = 30.0


class ProgressDisplay:
    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "img",
        stream: TextIO | None = None,
        enabled: bool = True,
        interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0
        self.status = ""
        self._started = self._last_line = clock()
        self._closed = False
        self._bar: Any = None
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + unit
            bar_format += " [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
            self._bar = tqdm(total=total, unit=unit, desc=desc, smoothing=0, file=self.stream, bar_format=bar_format)
        elif enabled:
            self._print_line()  # the log says at once what is being waited for

    def update_to(self, done: int) -> None:
        """`done` items finished so far (never goes back)."""
        self.advance(max(0, done - self.done))

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        self._maybe_line()

    def set_status(self, status: str) -> None:
        self.status = status
        if self._bar is not None:
            self._bar.set_postfix_str(status)
        self._maybe_line()

    def write(self, line: str, file: TextIO | None = None) -> None:
        """A line of output (a result) that must not be torn by the bar."""
        target = file if file is not None else sys.stdout
        if self._bar is not None:
            self._bar.write(line, file=target)
        else:
            print(line, file=target, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._print_line()

    def line(self) -> str:
        elapsed = max(self.clock() - self._started, 0.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        minutes, seconds = divmod(int(elapsed), 60)
        text = f"{self.desc}: {self.done}/{self.total} {self.unit}{percent}, {rate:.2f} {self.unit}/s"
        text += f", {minutes}:{seconds:02d} elapsed"
        return text + (f", {self.status}" if self.status else "")

    def _maybe_line(self) -> None:
        if self._bar is None and self.enabled and self.clock() - self._last_line >= self.interval_s:
            self._print_line()

    def _print_line(self) -> None:
        self._last_line = self.clock()
        print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream: no bar
        return False
