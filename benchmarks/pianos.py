"""Benchmark: how alike the pianos sound to the models, and whether two play the same samples.

    python benchmarks/pianos.py [--soundfonts A,B,..] [--keys 36-84] [--step 2]

Each soundfont plays every --step-th key of --keys alone for 1 s; a note's spectrum is the
models' log-frequency spectrogram averaged over 0.15-0.6 s after its onset. Two pianos'
similarity is the cosine of their spectra of the same key, averaged over the keys
(`synthesize.note_spectra`, `synthesize.spectra_similarity`). Pianos with different samples
stay under about 0.97; a pair above 0.98 plays the same samples (csound-grand and
timgm6mb-grand: 0.994), so a "held-out" piano that close to a training one is not held out.
Prints a Markdown block: the matrix, and each soundfont's most similar training piano
(data/synthesize.py's TRAIN_SOUNDFONTS).
"""

from __future__ import annotations

import argparse
from datetime import date

from _machine import machine  # benchmarks/_machine.py

from scorelink.data import synthesize
from scorelink.data.synthesize import note_spectra
from scorelink.data.synthesize import spectra_similarity as similarity
from scorelink.errors import ToolMissingError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--soundfonts", default=",".join(synthesize.SOUNDFONTS),
                   help="comma-separated names (default: every known soundfont)")
    p.add_argument("--keys", default="36-84", help="MIDI keys, LOW-HIGH")
    p.add_argument("--step", type=int, default=2, help="every this many keys")
    args = p.parse_args()
    low, high = (int(k) for k in args.keys.split("-"))
    keys = list(range(low, high + 1, args.step))
    names = []
    for name in args.soundfonts.split(","):
        try:
            synthesize.SOUNDFONTS[name].path()
            names.append(name)
        except ToolMissingError as exc:
            print(f"(left out: {exc})")
    spectra = {name: note_spectra(name, keys) for name in names}
    print(f"### Piano similarity ({date.today()})\n")
    print(f"- machine: {machine()}")
    print(f"- `python benchmarks/pianos.py --keys {args.keys} --step {args.step}`: "
          f"{len(keys)} keys; mean cosine of two pianos' spectra of the same key\n")
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for a in names:
        print(f"| {a} | " + " | ".join(f"{similarity(spectra[a], spectra[b]):.3f}"
                                       for b in names) + " |")
    train = [n for n in synthesize.TRAIN_SOUNDFONTS if n in spectra]
    print("\n| soundfont | role | nearest training piano | similarity |")
    print("|---|---|---|---|")
    for name in names:
        role = ("training" if name in synthesize.TRAIN_SOUNDFONTS else
                "validation" if name == synthesize.VALID_SOUNDFONT else
                "test" if name == synthesize.TEST_SOUNDFONT else "other")
        others = [t for t in train if t != name]
        if not others:
            continue
        best = max(others, key=lambda t: similarity(spectra[name], spectra[t]))
        print(f"| {name} | {role} | {best} | {similarity(spectra[name], spectra[best]):.3f} |")


if __name__ == "__main__":
    main()
