"""Helpers shared by the benchmarks: percentiles and a CPU hog on another core."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np


def percentiles_us(samples_s: list[float] | np.ndarray, prefix: str = "") -> dict[str, float]:
    arr = np.asarray(samples_s) * 1e6
    return {
        f"{prefix}p50_us": float(np.percentile(arr, 50)),
        f"{prefix}p99_us": float(np.percentile(arr, 99)),
        f"{prefix}max_us": float(arr.max()),
    }


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """A busy-looping subprocess (pinned to the last core where the OS allows) for the duration."""
    code = "while True: pass"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with contextlib.suppress(AttributeError, OSError):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(proc.pid, {cores[-1]})
    try:
        yield
    finally:
        proc.kill()
        proc.wait(timeout=5)


def machine() -> dict[str, object]:
    import platform

    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
