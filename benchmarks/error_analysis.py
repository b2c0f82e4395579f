"""Benchmark: where a passage model's first answers go wrong, split by split.

    python benchmarks/error_analysis.py --data data/chorales [--checkpoint CKPT] [--subsets 50]

For the test split and the validation split (the paper's protocol, `scorelink evaluate`) it
prints R@1 in both directions, how many wrong first answers fall in the query's own piece, the
pieces with most wrong S2A answers, and S2A R@1 on random subsets of test systems as many as
validation has: the number of candidates sets how hard the ranking is, so this is the figure to
hold against validation's. Prints Markdown.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import date

import numpy as np
from _machine import machine  # benchmarks/_machine.py

from scorelink import checkpoint
from scorelink.data.store import Dataset
from scorelink.evaluate.retrieval import embed, eval_records, group_systems


def first_answers(sheet: np.ndarray, audio: np.ndarray, keys: list) -> dict:
    """System columns, and each query's first answer, for both directions."""
    firsts, system_of = group_systems(keys)  # audio passage -> its system
    systems = [keys[i] for i in firsts]
    sims = sheet[firsts] @ audio.T  # (S, N)
    return {"systems": systems, "system_of": system_of, "sims": sims,
            "s2a": system_of[sims.argmax(1)], "a2s": sims.argmax(0)}


def subset_r1(ans: dict, size: int, runs: int, seed: int = 0) -> float:
    """Mean S2A R@1 over `runs` random subsets of `size` systems (their audio the candidates)."""
    rng = np.random.default_rng(seed)
    n = len(ans["systems"])
    if size >= n:
        return float(np.mean(ans["s2a"] == np.arange(n)))
    hits = []
    for _ in range(runs):
        pick = rng.choice(n, size, replace=False)
        cols = np.flatnonzero(np.isin(ans["system_of"], pick))
        top = ans["system_of"][cols][ans["sims"][pick][:, cols].argmax(1)]
        hits.append(np.mean(top == pick))
    return float(np.mean(hits))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--subsets", type=int, default=50, help="random subsets for the test figure")
    args = p.parse_args()
    model, _ = checkpoint.load_model(args.checkpoint)
    ds = Dataset(args.data)
    answers = {}
    for split in ("valid", "test"):
        records = eval_records(ds, split=split)
        sheet, audio = embed(model, args.data, records)  # float32, as `scorelink evaluate`
        answers[split] = (records, first_answers(sheet, audio,
                                                 [(r["piece"], r["system"]) for r in records]))

    print(f"### Error analysis ({date.today()}, {machine()})\n")
    print(f"    python benchmarks/error_analysis.py --data {args.data}"
          + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "") + "\n")
    print("| split | systems | audio passages | A2S R@1 | S2A R@1 | S2A wrong | of them in the "
          "query's piece | A2S wrong | of them in the query's piece |")
    print("|---|---|---|---|---|---|---|---|---|")
    for split, (records, ans) in answers.items():
        systems, system_of = ans["systems"], ans["system_of"]
        s2a_wrong = np.flatnonzero(ans["s2a"] != np.arange(len(systems)))
        a2s_wrong = np.flatnonzero(ans["a2s"] != system_of)
        same_s2a = sum(systems[ans["s2a"][j]][0] == systems[j][0] for j in s2a_wrong)
        same_a2s = sum(systems[ans["a2s"][i]][0] == records[i]["piece"] for i in a2s_wrong)
        print(f"| {split} | {len(systems)} | {len(records)} | "
              f"{100 * (1 - len(a2s_wrong) / len(records)):.1f} | "
              f"{100 * (1 - len(s2a_wrong) / len(systems)):.1f} | {len(s2a_wrong)} | {same_s2a} | "
              f"{len(a2s_wrong)} | {same_a2s} |")

    valid_n = len(answers["valid"][1]["systems"])
    test = answers["test"][1]
    print(f"\nS2A R@1 on {args.subsets} random subsets of {valid_n} test systems (validation's "
          f"number): {100 * subset_r1(test, valid_n, args.subsets):.1f} %")
    wrong = Counter(test["systems"][j][0] for j in range(len(test["systems"]))
                    if test["s2a"][j] != j)
    count = Counter(k[0] for k in test["systems"])
    print("\nTest pieces with most wrong S2A first answers (wrong / systems): "
          + ", ".join(f"{piece} {n}/{count[piece]}" for piece, n in wrong.most_common(8)))


if __name__ == "__main__":
    main()
