"""The machine line every benchmark prints with its figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """'AMD EPYC, 2 cores, Python 3.11.7': CPU model, cores this process may use, Python."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
