"""Progress while waiting: a bar on a terminal, else one plain line at the start, every 30 s and at the end."""

from __future__ import annotations

import io

from batch.progress_display import ProgressDisplay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_plain_line_at_the_start_every_30_s_and_at_the_end() -> None:
    stream, clock = io.StringIO(), Clock()
    with ProgressDisplay(total=1000, desc="job-1", stream=stream, clock=clock) as progress:
        for second in range(0, 95, 5):  # a poll every 5 s for 90 s
            clock.now = 1000.0 + second
            progress.update_to(second * 4)
            progress.set_status("InProgress")
        clock.now = 1100.0
        progress.update_to(1000)
        progress.set_status("Completed")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "job-1: 0/1000 img (0%), 0.00 img/s, 0:00 elapsed",
        "job-1: 120/1000 img (12%), 4.00 img/s, 0:30 elapsed, InProgress",
        "job-1: 240/1000 img (24%), 4.00 img/s, 1:00 elapsed, InProgress",
        "job-1: 360/1000 img (36%), 4.00 img/s, 1:30 elapsed, InProgress",
        "job-1: 1000/1000 img (100%), 10.00 img/s, 1:40 elapsed, Completed",
    ]
    assert "\r" not in stream.getvalue()


def test_an_hour_off_a_terminal_is_about_120_lines_not_thousands() -> None:
    stream, clock = io.StringIO(), Clock()
    with ProgressDisplay(total=7200, desc="job", stream=stream, clock=clock) as progress:
        for tick in range(7200):  # two updates a second for an hour
            clock.now = 1000.0 + tick / 2
            progress.advance()
    assert len(stream.getvalue().splitlines()) == 1 + 119 + 1  # the start, 30 s, 60 s, ... 59:30, the end


def test_on_a_terminal_a_bar_and_results_printed_around_it() -> None:
    stream, results = Terminal(), io.StringIO()
    with ProgressDisplay(total=4, desc="waiting", stream=stream) as progress:
        progress.advance(2)
        progress.write('{"status": "ok"}', file=results)
    assert "\r" in stream.getvalue() and "2/4 img" in stream.getvalue() and "|" in stream.getvalue()
    assert results.getvalue() == '{"status": "ok"}\n'


def test_disabled_it_prints_nothing() -> None:
    stream, clock = io.StringIO(), Clock()
    with ProgressDisplay(total=3, desc="job", stream=stream, enabled=False, clock=clock) as progress:
        clock.now += 100
        progress.advance(3)
    assert stream.getvalue() == ""
