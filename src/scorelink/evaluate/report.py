"""Evaluation results as a terminal table (the paper's Table 2 layout)."""

from __future__ import annotations

METRICS = ("R@1", "R@10", "R@25", "MRR", "MR")


def format_table(result: dict) -> str:
    """One row per direction: R@1, R@10, R@25 (%), MRR, MR."""
    head = f"{'':<5}" + "".join(f"{m:>8}" for m in METRICS) + f"{'queries':>9}"
    lines = [f"model {result['model']} on {result['data']} ({result['split']}, tempo "
             f"{result['tempo']:g})", head]
    for d in ("a2s", "s2a"):
        if d in result:
            m = result[d]
            lines.append(f"{d.upper():<5}" + f"{m['R@1']:>8.1f}{m['R@10']:>8.1f}{m['R@25']:>8.1f}"
                         f"{m['MRR']:>8.3f}{m['MR']:>8.1f}{result['queries'][d]:>9}")
    return "\n".join(lines)
