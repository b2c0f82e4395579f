"""The pianos play what is written: every soundfont at the written pitch, the sampled pianos'
soundfonts built right from their samples, and the held-out pianos unlike every training one."""

import shutil

import numpy as np
import pytest

from scorelink.constants import SAMPLE_RATE
from scorelink.data import sampled, synthesize
from scorelink.errors import ToolMissingError


def _fundamental(audio: np.ndarray, key: int) -> float:
    """The candidate within a semitone of `key` whose first four harmonics are loudest (Hz)."""
    seg = audio[int(0.05 * SAMPLE_RATE): int(0.45 * SAMPLE_RATE)]
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / SAMPLE_RATE)
    written = 440.0 * 2 ** ((key - 69) / 12)
    candidates = written * 2 ** (np.arange(-16, 17) / 16 / 12)  # 1/16 semitone steps
    strength = [sum(spectrum[np.argmin(np.abs(freqs - h * c))] for h in range(1, 5))
                for c in candidates]
    return float(candidates[int(np.argmax(strength))])


def _available(name: str) -> bool:
    try:
        synthesize.SOUNDFONTS[name].path()
    except ToolMissingError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(synthesize.SOUNDFONTS))
def test_every_piano_sounds_the_written_pitch(name):
    if not _available(name):
        pytest.skip(f"{name} is not installed here")
    for key in (36, 60, 61, 63, 84):  # a sampled key, and keys played from a neighbour's sample
        audio = synthesize.render(np.array([0.0]), np.array([0.5]), np.array([key]),
                                  soundfont=name)
        written = 440.0 * 2 ** ((key - 69) / 12)
        assert abs(np.log2(_fundamental(audio, key) / written) * 12) < 0.1, (name, key)


def test_sample_names_and_ranges():
    assert sampled.sample_key("D#4v8") == (63, 8)
    assert sampled.sample_key("A0v16") == (21, 16)
    assert sampled.sample_key("README") is None
    assert sampled.sample_key("Ds4") == (63, sampled.SINGLE_LAYER)  # tonejs: s for sharp
    assert sampled.sample_key("As1") == (34, sampled.SINGLE_LAYER)
    assert sampled.velocity_ranges([sampled.SINGLE_LAYER]) == {sampled.SINGLE_LAYER: (1, 127)}
    keys = sampled.key_ranges([21, 24, 27, 30, 105, 108])
    covered = [k for lo, hi in keys.values() for k in range(lo, hi + 1)]
    assert sorted(covered) == list(range(21, 109))  # every key of the piano, once
    assert all(lo <= key <= hi for key, (lo, hi) in keys.items())
    velocities = sampled.velocity_ranges([4, 8, 12, 16])
    covered = [v for lo, hi in velocities.values() for v in range(lo, hi + 1)]
    assert sorted(covered) == list(range(1, 128))
    assert velocities[8][0] <= 64 <= velocities[8][1]  # MSMD's constant velocity: layer 8


@pytest.mark.skipif(shutil.which("polyphone") is None, reason="needs Polyphone (make setup)")
def test_salamander_soundfont_built_from_samples(tmp_path, monkeypatch):
    """Two sine 'samples' of C4 at two velocity layers: the SF2 plays D4 a tone higher, and a
    loud note from the loud layer."""
    import soundfile as sf

    rate = 44100
    t = np.arange(int(2.0 * rate)) / rate
    c4 = np.sin(2 * np.pi * 261.626 * t) * np.exp(-t)
    samples = tmp_path / "audio"
    samples.mkdir()
    sf.write(samples / "C4v4.ogg", np.stack([0.05 * c4] * 2, axis=1), rate)
    sf.write(samples / "C4v12.ogg", np.stack([0.5 * c4] * 2, axis=1), rate)
    out = sampled.build(tmp_path / "fonts" / "SalamanderGrand.sf2", [samples])
    monkeypatch.setattr(synthesize, "_SF_DIRS", (str(out.parent),))
    monkeypatch.setattr(synthesize, "_SYNTHS", {})
    soft, loud = (synthesize.render(np.array([0.0]), np.array([0.5]), np.array([62]),
                                    soundfont="salamander-grand", velocity=v) for v in (30, 120))
    assert abs(np.log2(_fundamental(loud, 62) / 293.665) * 12) < 0.1
    assert np.abs(loud).max() > 4 * np.abs(soft).max()
    synthesize.fresh_synthesizers()


def test_held_out_pianos_are_not_training_pianos():
    """Validation and test must hear pianos training never hears. csound-grand, validation's
    piano until 2026-12-06, plays TimGM6mb's grand samples: its notes' spectra match
    timgm6mb-grand's at cosine 0.994, where distinct pianos stay under 0.97."""
    for held_out in (synthesize.VALID_SOUNDFONT, synthesize.TEST_SOUNDFONT):
        assert not synthesize.shares_samples(held_out, synthesize.TRAIN_SOUNDFONTS)
    assert synthesize.shares_samples("csound-grand", ["timgm6mb-grand"])
    assert not synthesize.shares_samples("csound-grand", ["fluidr3-grand"])
    names = [*synthesize.TRAIN_SOUNDFONTS, synthesize.VALID_SOUNDFONT,
             synthesize.TEST_SOUNDFONT, "csound-grand"]
    if not all(_available(n) for n in names):
        pytest.skip("needs every soundfont (make setup)")
    t = {n: synthesize.note_spectra(n, range(36, 85, 4)) for n in names}

    def similarity(a: str, b: str) -> float:
        return synthesize.spectra_similarity(t[a], t[b])

    assert similarity("csound-grand", "timgm6mb-grand") > 0.98  # the check sees a shared set
    for held_out in (synthesize.VALID_SOUNDFONT, synthesize.TEST_SOUNDFONT):
        for train_name in synthesize.TRAIN_SOUNDFONTS:
            assert similarity(held_out, train_name) < 0.975, (held_out, train_name)
