"""Process-level settings that make the CPU learner fast: torch threads and the allocator.

``tune_allocator``: PyTorch's CPU tensors of a few MB come from glibc malloc, which by default serves them
with fresh ``mmap`` pages and hands them back on free, so every gradient step page-faults its
activations in again (measured here: a 2-thread reference-size step went from ~0.8 s to ~0.3 s). Raising
the mmap and trim thresholds keeps that memory in the heap for reuse. Linux/glibc only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit
_tuned = False


def tune_allocator(trim_threshold_bytes: int = 1 << 30) -> bool:
    """Keep freed tensor memory in the heap (glibc ``mallopt``); True if applied."""
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_bytes) == 1 and ok
    except (OSError, AttributeError):
        return False
    _tuned = ok
    return ok


def configure_torch(threads: int = 0) -> int:
    """Set torch's intra-op threads (``threads > 0``; 1 when a control loop shares the CPU) and tune the
    allocator; returns the thread count in effect."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    tune_allocator()
    return torch.get_num_threads()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from pearl_robot.errors import ConfigError

        raise ConfigError("<config>", "device", f"'{name}' requested but no CUDA device is available")
    return device
