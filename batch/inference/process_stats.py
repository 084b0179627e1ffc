"""Process-level figures for /metrics and the benchmark."""

from __future__ import annotations


def peak_rss_bytes() -> int:
    """This process's peak resident set (Linux VmHWM; 0 where /proc is absent)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
