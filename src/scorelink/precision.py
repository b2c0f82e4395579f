"""Whether bfloat16 autocast pays on this CPU.

bfloat16 autocast with channels-last CNNs trains about 3x faster than float32 on CPUs whose
oneDNN runs bfloat16 natively (AVX-512, AMX), and several times slower where it must emulate
it (AVX2 only: measured in docs/benchmarks.md). "auto" asks oneDNN which this CPU is.
"""

from __future__ import annotations

import torch

SETTINGS = ("auto", "true", "false")


def cpu_bf16_native() -> bool:
    """True where oneDNN has native bfloat16 kernels for this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def setting(value: str | bool | None) -> str:
    """A bf16 setting ("auto", "true", "false", a bool, or None for auto) as one of SETTINGS;
    ValueError for anything else."""
    if value is None:
        return "auto"
    if isinstance(value, bool):  # config files written when the setting was a bool
        return str(value).lower()
    if value not in SETTINGS:
        raise ValueError(f"bf16 is one of {', '.join(SETTINGS)}, not {value!r}")
    return value


def use_bf16(value: str | bool | None) -> bool:
    """A bf16 setting (see `setting`) -> on or off for this CPU."""
    value = setting(value)
    return cpu_bf16_native() if value == "auto" else value == "true"
