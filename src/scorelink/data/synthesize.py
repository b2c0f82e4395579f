"""Render a performance to audio with FluidSynth and piano soundfonts (Debian's, and the two
sampled pianos that `make setup` builds from the npm registry's samples: data/sampled.py).

We drive libfluidsynth directly (pyfluidsynth) from the note list rather than writing a MIDI file
and calling the `fluidsynth` program: each worker loads a soundfont once instead of once per
rendition (1-2 s for an sf3), and every note starts on the exact sample of its onset, so the
audio matches the score timing with no MIDI-tick rounding.
"""

from __future__ import annotations

import ctypes.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorelink.constants import SAMPLE_RATE, VELOCITY
from scorelink.errors import AudioError, ToolMissingError

# Debian's folders, then the environment's own (where `make setup` puts the Salamander grand)
_SF_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts",
            str(Path(sys.prefix) / "share" / "soundfonts"))
TAIL_SECONDS = 1.0  # audio kept after the last note-off (release and reverb)
_GAIN = 0.5
_CHANNELS = tuple(c for c in range(16) if c != 9)  # channel 10 is percussion in General MIDI


@dataclass(frozen=True)
class Soundfont:
    """A piano timbre: a soundfont file and the preset in it."""

    name: str
    files: tuple[str, ...]  # candidate file names, first found wins
    program: int  # General MIDI program (0 = acoustic grand, 4 = electric piano 1)
    install: str  # the command that installs it
    bank: int = 0
    samples: str = ""  # the sample set it plays, where another soundfont plays the same one

    @property
    def sample_set(self) -> str:
        return self.samples or self.name

    def path(self) -> Path:
        for folder in _SF_DIRS:
            for name in self.files:
                candidate = Path(folder) / name
                if candidate.exists():
                    return candidate.resolve()
        raise ToolMissingError(
            f"soundfont for {self.name!r} not found ({' or '.join(self.files)} under "
            f"{', '.join(_SF_DIRS)}); install it with: {self.install}"
        )


_APT = "sudo apt-get install "
SOUNDFONTS = {
    sf.name: sf
    for sf in (
        Soundfont("fluidr3-grand", ("FluidR3_GM.sf2",), 0, _APT + "fluid-soundfont-gm"),
        Soundfont("fluidr3-epiano", ("FluidR3_GM.sf2",), 4, _APT + "fluid-soundfont-gm"),
        Soundfont("fluidr3-egrand", ("FluidR3_GM.sf2",), 2, _APT + "fluid-soundfont-gm"),
        Soundfont("timgm6mb-grand", ("TimGM6mb.sf2",), 0, _APT + "timgm6mb-soundfont"),
        Soundfont("timgm6mb-epiano", ("TimGM6mb.sf2",), 4, _APT + "timgm6mb-soundfont"),
        # sf_GMbank's grand is TimGM6mb's grand samples (waveforms correlate at 0.997)
        Soundfont("csound-grand", ("sf_GMbank.sf2",), 0, _APT + "csound-soundfont",
                  samples="timgm6mb-grand"),
        Soundfont(
            "musescore-grand",
            ("MuseScore_General.sf3", "MuseScore_General_Lite.sf3", "MuseScore_General.sf2"),
            0,
            _APT + "musescore-general-soundfont-small",
        ),
        Soundfont("salamander-grand", ("SalamanderGrand.sf2",), 0, "make setup"),
        Soundfont("tonejs-piano", ("TonejsPiano.sf2",), 0, "make setup"),
    )
}
# Five timbres from two sample sets. The bright-grand programs (1) of these files sound like
# their grands and csound's electric piano is TimGM6mb's (same samples), so neither is here.
TRAIN_SOUNDFONTS = ("fluidr3-grand", "fluidr3-epiano", "fluidr3-egrand", "timgm6mb-grand",
                    "timgm6mb-epiano")
# Validation plays a piano that training never hears, as the test does: model selection then
# sees how a model copes with an unknown instrument. Until 2026-12-06 it was csound-grand, which
# turned out to play TimGM6mb's grand samples, a training piano's (docs/dataset.md).
VALID_SOUNDFONT = "tonejs-piano"
TEST_SOUNDFONT = "musescore-grand"  # never used for training or validation
# The Salamander grand is a training piano of campaign stage pianos (campaigns/piano/run.sh),
# which renders the training pieces with it into folders of their own.
# What datasets built before these were added used (their dataset.json does not name them).
LEGACY_TRAIN_SOUNDFONTS = ("fluidr3-grand", "fluidr3-epiano", "timgm6mb-grand")
LEGACY_VALID_SOUNDFONT = "fluidr3-grand"


def shares_samples(name: str, others) -> bool:
    """Whether soundfont `name` plays the samples of one of `others`: is one of them, or
    another name for the same sample set (csound-grand for timgm6mb-grand)."""
    return SOUNDFONTS[name].sample_set in {SOUNDFONTS[n].sample_set for n in others}


def note_spectra(soundfont: str, keys) -> np.ndarray:
    """(len(keys), N_BINS): each key played alone for 1 s, as the models hear it (the
    log-frequency spectrogram averaged over 0.15-0.6 s after the onset)."""
    from scorelink.constants import FPS
    from scorelink.data.spectrogram import spectrogram

    rows = []
    for key in keys:
        audio = render(np.array([0.1]), np.array([1.1]), np.array([key]), soundfont=soundfont)
        rows.append(spectrogram(audio)[:, round(0.25 * FPS):round(0.7 * FPS)].mean(axis=1))
    return np.array(rows)


def spectra_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """How alike two pianos sound: the mean over keys of the cosine of their `note_spectra`.
    Pianos with different samples stay under about 0.97; csound-grand and timgm6mb-grand, one
    sample set, reach 0.994 (benchmarks/pianos.py)."""
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(np.mean(cosine))


def check_synthesis(soundfonts: tuple[str, ...] = tuple(SOUNDFONTS)) -> None:
    """Stop early, with an install hint, when FluidSynth or a soundfont is missing."""
    if ctypes.util.find_library("fluidsynth") is None and shutil.which("fluidsynth") is None:
        raise ToolMissingError(
            "FluidSynth is not installed; install it with: sudo apt-get install fluidsynth"
        )
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as exc:
        raise ToolMissingError(
            f"the FluidSynth library cannot be loaded ({exc}); install it with: "
            "sudo apt-get install fluidsynth, and pip install pyfluidsynth"
        ) from exc
    for name in soundfonts:
        SOUNDFONTS[name].path()


def fresh_synthesizers() -> None:
    """Drop the loaded synthesizers: the next rendition starts a new one.

    A FluidSynth synthesizer carries state from one rendition to the next (its 64-sample block
    and dither positions, the reverb's tail, samples prepared on first use), so the same notes
    come out slightly different after other renditions (onsets up to a block apart: at the
    attacks, samples differ by up to a quarter of full scale). A builder that calls this
    before each piece makes the piece's audio depend on that piece alone: rebuilt alone, it is
    the same as built after others."""
    while _SYNTHS:
        _SYNTHS.popitem()[1][0].delete()


_SYNTHS: dict[str, tuple] = {}  # soundfont path -> (fluidsynth.Synth, soundfont id)


def _synth(path: str):
    """One synthesizer per soundfont file per process, soundfont loaded once."""
    if path in _SYNTHS:
        return _SYNTHS[path]
    import fluidsynth

    synth = fluidsynth.Synth(samplerate=float(SAMPLE_RATE), gain=_GAIN)
    sfid = synth.sfload(path)
    if sfid < 0:
        synth.delete()
        raise AudioError(f"FluidSynth could not load {path}")
    _SYNTHS[path] = (synth, sfid)
    return _SYNTHS[path]


def render(
    onset: np.ndarray,
    offset: np.ndarray,
    pitch: np.ndarray,
    *,
    soundfont: str,
    tempo: float = 1.0,
    velocity: int | np.ndarray = VELOCITY,
    controls: np.ndarray | None = None,
) -> np.ndarray:
    """Synthesise notes to mono float32 audio at SAMPLE_RATE.

    onset, offset: (N,) seconds at the score tempo; they are divided by `tempo`
    (tempo 2.0 plays twice as fast). pitch: (N,) MIDI numbers. velocity: one for all notes or
    (N,) per note (a performance's dynamics). controls: (K, 3) rows (seconds, controller,
    value), MIDI control changes sent to every channel (64 = sustain pedal, 66 = sostenuto,
    67 = soft pedal). Returns (samples,) in [-1, 1], lasting until the last note-off plus
    TAIL_SECONDS.
    """
    if soundfont not in SOUNDFONTS:
        raise AudioError(f"unknown soundfont {soundfont!r}; known: {', '.join(SOUNDFONTS)}")
    if tempo <= 0:
        raise AudioError(f"tempo factor must be positive, got {tempo}")
    sf = SOUNDFONTS[soundfont]
    synth, sfid = _synth(str(sf.path()))
    synth.system_reset()
    synth.get_samples(SAMPLE_RATE)  # let the previous rendition's reverb die out
    for channel in _CHANNELS:
        synth.program_select(channel, sfid, sf.bank, sf.program)

    velocities = np.broadcast_to(np.asarray(velocity, dtype=np.int64), np.shape(onset))
    events = _schedule(np.asarray(onset) / tempo, np.asarray(offset) / tempo, np.asarray(pitch),
                       np.clip(velocities, 1, 127))
    for seconds, controller, value in (() if controls is None else np.asarray(controls)):
        sample = int(round(float(seconds) / tempo * SAMPLE_RATE))
        events.extend((sample, 2, channel, (int(controller), int(value))) for channel in _CHANNELS)
    events.sort(key=lambda e: (e[0], e[1] != 0, e[1] != 2))  # offs, then pedals, then ons
    chunks, now = [], 0
    for sample, kind, channel, key in events:
        if sample > now:
            chunks.append(synth.get_samples(sample - now))
            now = sample
        if kind == 2:
            synth.cc(channel, *key)
        elif kind:
            synth.noteon(channel, key[0], key[1])
        else:
            synth.noteoff(channel, key[0])
    chunks.append(synth.get_samples(int(TAIL_SECONDS * SAMPLE_RATE)))
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
    audio = (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5) / 32768.0  # = mean(axis=1), 10x faster
    if not np.isfinite(audio).all():
        raise AudioError("FluidSynth produced invalid samples")
    return audio


def _schedule(onset: np.ndarray, offset: np.ndarray, pitch: np.ndarray,
              velocity: np.ndarray) -> list[tuple]:
    """Note on/off events as (sample, is_on, channel, (key, velocity)), in time order.

    A key struck again while it still sounds (two voices in unison) goes to another channel,
    so that one voice's note-off does not silence the other.
    """
    on_samples = np.round(onset * SAMPLE_RATE).astype(np.int64)
    off_samples = np.maximum(np.round(offset * SAMPLE_RATE).astype(np.int64), on_samples + 1)
    busy_until: dict[tuple[int, int], int] = {}
    events = []
    for i in np.argsort(on_samples, kind="stable"):
        key = int(pitch[i])
        channel = next(
            (c for c in _CHANNELS if busy_until.get((c, key), -1) <= on_samples[i]), _CHANNELS[0]
        )
        busy_until[(channel, key)] = int(off_samples[i])
        events.append((int(on_samples[i]), 1, channel, (key, int(velocity[i]))))
        events.append((int(off_samples[i]), 0, channel, (key, 0)))
    events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same sample
    return events
