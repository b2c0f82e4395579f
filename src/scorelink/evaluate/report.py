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
            if d in result.get("ci95", {}):
                ci = result["ci95"][d]
                lines.append(f"{'  95%':<5}" + "".join(
                    f"{_span(ci[k], fraction=k == 'MRR'):>8}" for k in METRICS)
                    + f"{'by piece':>9}")
    return "\n".join(lines)


def _span(interval: list[float], *, fraction: bool) -> str:
    """"70-78" for percentages, ".78-.84" for MRR (the leading zeros dropped to fit a column)."""
    if fraction:
        return "-".join(f"{v:.2f}".removeprefix("0") for v in interval)
    return "-".join(f"{v:.0f}" for v in interval)


def format_comparison(result: dict, other: dict, differences: dict) -> str:
    """Each metric's difference `result` - `other` with its paired 95% interval."""
    lines = [f"{result['model']} minus {other['model']} (same queries, pieces resampled)",
             f"{'':<5}" + "".join(f"{m:>23}" for m in METRICS)]
    for d, diff in differences.items():
        cells = []
        for m in METRICS:
            x, f = diff[m], ("{:+.3f}" if m == "MRR" else "{:+.1f}")
            cells.append(f"{f.format(x['diff'])} [{f.format(x['lo'])},{f.format(x['hi'])}]")
        lines.append(f"{d.upper():<5}" + "".join(f"{c:>23}" for c in cells))
    return "\n".join(lines)
