"""Passages as snippet sequences for the passage model, and batches of them.

A batch concatenates the snippets of all its passages along the first axis and keeps each
passage's length, which is what the packed GRU needs (no padding ever reaches the model).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.signal import lfilter
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from scorelink.constants import FPS, FRAME_SIZE, N_BINS, SAMPLE_RATE, STRIP_HEIGHT
from scorelink.data.spectrogram import log_filterbank
from scorelink.models.snippets import audio_snippets, sheet_snippets
from scorelink.train.scanlike import scan_like

SHEET_SHIFT = 5  # px: training augmentation, random vertical shift of the strip
# Timbre augmentation (optional): a random smooth equaliser curve and a random gain, so the
# audio encoder sees more piano colours than the three training soundfonts.
TIMBRE_GAIN_DB = 6.0  # global gain, uniform in +-6 dB
TIMBRE_TILT_DB = 6.0  # linear tilt from the lowest to the highest bin, +-6 dB
TIMBRE_BUMPS_DB = 3.0  # three cosine components over the bins, +-3 dB each
# Crop augmentation (optional): a run of consecutive onsets of the system, at least this share
# of them, cut from both the strip and the spectrogram (a shorter passage, aligned by its notes).
CROP_MIN_SHARE = 0.5
CROP_MIN_ONSETS = 4  # systems with fewer distinct onsets are never cropped
CROP_MIN_WIDTH = 90  # px of strip: a narrower crop is not taken
# Join augmentation (optional): a run of onsets that starts in the system and ends in the next
# one (the next system played, in reading order), cut from both strips joined left to right and
# from the audio across the boundary: what a clip cut at a random place hears, and what the
# index's parts (search/parts.py) show of the page. From JOIN_MIN_SHARE of the system's onsets
# up to all of both systems' but one.
JOIN_MIN_SHARE = 0.25
# Room augmentation (optional): the audio as another room and another player's dynamics would
# make it. The shipped model lost 12 points of clip R@1 to a 0.5 s reverberation tail and 23 to
# dynamics compressed by a power of 0.7, neither of which the equaliser above imitates
# (docs/search.md, the test piano).
ROOM_TAIL_S = (0.1, 0.8)  # reverberation: the decay time of the added tail, log-uniform
ROOM_WET = (0.2, 1.0)  # the tail's level against the dry sound, uniform
ROOM_POWER = (0.7, 1.3)  # magnitudes raised to this power (relative to the loudest), log-uniform
# Fine equaliser augmentation (optional): a gain drawn for every band, as a piano's soundboard
# and body colour its sound frequency by frequency. A random such curve (sd 6 dB, smoothed over
# three bands) cost the shipped model 26.5 points of clip R@1 on a training piano, where the
# smooth equaliser above costs nothing; the shipped model found 10 s clips 74.5 % of the time
# played with a training piano's samples, 24.5 % with the Salamander grand's and 13.5 % with
# the tonejs-instruments piano's, and training with this curve raised the two unknown pianos'
# clips by 11.4 points (docs/search.md, Other pianos).
FINE_EQ_DB = 6.0  # sd of each band's gain before smoothing
# Piano augmentation (optional): the passage as another piano would play it, note by note. The
# notes say where each harmonic sounds; each passage gets a random piano: a gain per harmonic
# number (a slope over its octaves that changes with the pitch, plus each harmonic's own), and
# at every onset a short knock of low noise. It costs the shipped model 3 points at query time
# and bought 4.2 on unknown pianos in training: a smaller share of what sets pianos apart.
PIANO_HARMONICS = 12
PIANO_SLOPE_DB = (-5.0, 1.5)  # per octave of harmonic number, uniform
PIANO_PITCH_DB = 2.0  # the slope's change per octave of pitch, uniform in +-
PIANO_SPREAD_DB = 4.0  # each harmonic's own gain (the fundamental's 0), normal sd
PIANO_RING_FRAMES = 8  # a note's harmonics keep their gains this long after its offset
PIANO_THUMP = (0.0, 0.1)  # onset noise against the frame's loudest band, uniform
PIANO_THUMP_BAND = (0, 30)  # its loudest band (below about 190 Hz), uniform
PIANO_THUMP_WIDTH = 8.0  # bands: the noise falls by half this far from its loudest band
PIANO_THUMP_DECAY = 0.35  # the burst's level in the next frame, relative


class PassageSnippets(TorchDataset):
    """records of a dataset folder -> (sheet (n_s, 80, 90), audio (n_a, 92, 20), index).

    Holds only the folder path and the records, so worker processes open the arrays
    themselves (memory-mapped) and nothing large is pickled. `first_index` is added to the
    index an item reports, so that several folders joined in one ConcatDataset number their
    passages as one list.
    """

    def __init__(self, root: str | Path, records: list[dict], *, augment: bool = False,
                 timbre: bool = False, tempo: float = 0.0, crop: float = 0.0,
                 scan: float = 0.0, join: float = 0.0, room: float = 0.0,
                 piano: float = 0.0, fine_eq: float = 0.0, first_index: int = 0):
        self.root = Path(root)
        self.records = records
        self.join = join
        self.next_of = next_systems(records) if join > 0 else {}
        self.first_index = first_index
        self.augment = augment
        self.timbre = timbre
        self.tempo = tempo
        self.crop = crop
        self.scan = scan
        self.room = room
        self.piano = piano
        self.fine_eq = fine_eq
        self._ds = None

    def __len__(self) -> int:
        return len(self.records)

    def _dataset(self):
        if self._ds is None:
            from scorelink.data.store import Dataset

            self._ds = Dataset(self.root)
        return self._ds

    def __getitem__(self, i: int):
        ds, r = self._dataset(), self.records[i]
        strip = ds.strip(r)
        shift = 0
        if self.augment:
            shift = int(torch.randint(-SHEET_SHIFT, SHEET_SHIFT + 1, ()))
            strip = shift_rows(strip, shift)
        spec = ds.spec(r)
        if (self.timbre or self.tempo > 1.0 or self.crop > 0 or self.scan > 0 or self.join > 0
                or self.room > 0 or self.piano > 0 or self.fine_eq > 0):
            # seeded from torch's generator, which the DataLoader seeds per worker and epoch
            rng = np.random.default_rng(int(torch.randint(2**31, ())))
            piano = random_piano(rng) if self.piano > 0 and rng.random() < self.piano else None
            if piano is not None:
                spec = replay(spec, ds.notes(r), piano, rng)
            following = self.next_of.get(i)
            if following is not None and rng.random() < self.join:
                nxt = self.records[following]
                strip_b = ds.strip(nxt)
                if self.augment:  # the same shift: one line of music across the join
                    strip_b = shift_rows(strip_b, shift)
                spec_b = ds.spec(nxt)
                if piano is not None:  # the same piano plays on
                    spec_b = replay(spec_b, ds.notes(nxt), piano, rng)
                strip, spec = join(strip, spec, ds.notes(r), strip_b, spec_b,
                                   ds.notes(nxt), rng)
            elif self.crop > 0 and rng.random() < self.crop:
                strip, spec = crop(strip, spec, ds.notes(r), rng)
            if self.timbre:
                spec = recolour(spec, rng)
            if self.fine_eq > 0 and rng.random() < self.fine_eq:
                spec = fine_equalise(spec, rng)
            if self.tempo > 1.0 and rng.random() < 0.5:  # half the passages keep their tempo
                spec = stretch(spec, float(np.exp(rng.uniform(-1, 1) * np.log(self.tempo))))
            if self.room > 0 and rng.random() < self.room:  # after the stretch: a room's tail
                spec = room(spec, rng)  # does not change with the tempo
            if self.scan > 0 and rng.random() < self.scan:
                strip = scan_like(strip, rng)
        return sheet_snippets(strip), audio_snippets(spec), self.first_index + i


def crop_bounds(notes: np.ndarray, rng: np.random.Generator, *, width: int, frames: int,
                min_share: float = CROP_MIN_SHARE) -> tuple[int, int, int, int] | None:
    """A random run of consecutive onsets of a passage: (left, right) strip columns and
    (start, end) spectrogram frames that hold exactly its notes, or None where the passage is
    too short to crop.

    notes: the passage's notes (NOTE_DTYPE: x in strip pixels, onset_frame from the passage
    start). The strip is cut halfway between the noteheads of the last onset left out and the
    first one kept (and at the other end likewise); the audio at the onsets themselves, as the
    dataset cuts systems. A run that starts the system keeps its clef and key signature.
    """
    n = len(np.unique(notes["onset_frame"]))
    if n < CROP_MIN_ONSETS:
        return None
    keep = int(rng.integers(max(1, int(np.ceil(min_share * n))), n + 1))
    i = int(rng.integers(0, n - keep + 1))
    return run_bounds(notes, i, i + keep, width=width, frames=frames)


def run_bounds(notes: np.ndarray, i: int, j: int, *, width: int,
               frames: int) -> tuple[int, int, int, int] | None:
    """(left, right) strip columns and (start, end) spectrogram frames that hold exactly the
    notes of a passage's distinct onsets i..j-1 (as crop_bounds), or None where their noteheads
    are out of order."""
    frame = notes["onset_frame"]
    onsets = np.unique(frame)
    n = len(onsets)
    if i == 0 and j == n:
        return 0, width, 0, frames

    def xs(k: int) -> np.ndarray:
        return notes["x"][frame == onsets[k]]

    left = 0 if i == 0 else int(np.ceil((xs(i - 1).max() + xs(i).min()) / 2))
    right = width if j == n else int((xs(j - 1).max() + xs(j).min()) / 2)
    start = 0 if i == 0 else int(onsets[i])
    end = frames if j == n else int(onsets[j])
    if right - left < CROP_MIN_WIDTH or end <= start:
        return None  # noteheads out of order (a chord's seconds, grace notes): leave it whole
    kept = (frame >= onsets[i]) & (frame <= onsets[j - 1])
    inside = (notes["x"] >= left) & (notes["x"] < right)
    if np.any(kept != inside):  # a notehead of the run left of one before it, or the like
        return None
    return left, right, start, end


def crop(strip: np.ndarray, spec: np.ndarray, notes: np.ndarray,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The strip and spectrogram of a random run of the passage's onsets (see crop_bounds);
    the passage whole where it cannot be cropped."""
    bounds = crop_bounds(notes, rng, width=strip.shape[1], frames=spec.shape[1])
    if bounds is None:
        return strip, spec
    left, right, start, end = bounds
    return strip[:, left:right], spec[:, start:end]


def next_systems(records: list[dict]) -> dict[int, int]:
    """{i: j}: records[j] is what is heard right after records[i] (same piece and rendition,
    its audio starting where records[i]'s ends) and is the next system in reading order (a
    repeat's jump back is left out: the index's parts join systems in reading order)."""
    at = {(r["piece"], r["rendition"], r["start_frame"]): j for j, r in enumerate(records)}
    out = {}
    for i, r in enumerate(records):
        j = at.get((r["piece"], r["rendition"], r["end_frame"]))
        if j is not None and records[j]["system"] == r["system"] + 1:
            out[i] = j
    return out


def join_bounds(notes_a: np.ndarray, notes_b: np.ndarray, rng: np.random.Generator, *,
                widths: tuple[int, int], frames: tuple[int, int]
                ) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The notes of two consecutive passages (strip widths and spectrogram frames of a and b)
    on one timeline, b's columns after a's strip and its frames after a's audio, and the
    bounds (as crop_bounds, on the joined strip and audio) of a random run of their onsets that
    holds a's last onset and b's first; None where either has fewer than CROP_MIN_ONSETS onsets
    or the run's noteheads are out of order."""
    shifted = notes_b.copy()
    shifted["x"] += widths[0]
    shifted["onset_frame"] += frames[0]
    notes = np.concatenate([notes_a, shifted])
    # counted on the joined timeline: a note of b that the cut puts a frame before b's audio
    # (or one of a's at its very end) shares an onset with the other system
    onsets = np.unique(notes["onset_frame"])
    n, n_a = len(onsets), int(np.sum(onsets < frames[0]))
    if min(n_a, n - n_a) < CROP_MIN_ONSETS:
        return None
    keep = int(rng.integers(max(2, int(np.ceil(JOIN_MIN_SHARE * n_a))), n))
    i = int(rng.integers(max(0, n_a - keep + 1), min(n_a - 1, n - keep) + 1))
    bounds = run_bounds(notes, i, i + keep, width=sum(widths), frames=sum(frames))
    return None if bounds is None else (notes, bounds)


def join(strip_a: np.ndarray, spec_a: np.ndarray, notes_a: np.ndarray, strip_b: np.ndarray,
         spec_b: np.ndarray, notes_b: np.ndarray,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The strip and spectrogram of a random run of onsets across the boundary of passage a
    and the passage b after it (see join_bounds); passage a whole where there is none."""
    found = join_bounds(notes_a, notes_b, rng, widths=(strip_a.shape[1], strip_b.shape[1]),
                        frames=(spec_a.shape[1], spec_b.shape[1]))
    if found is None:
        return strip_a, spec_a
    left, right, start, end = found[1]
    strip = np.concatenate([strip_a, strip_b], axis=1)
    spec = np.concatenate([spec_a, spec_b], axis=1)
    return strip[:, left:right], spec[:, start:end]


def stretch(spec: np.ndarray, rho: float) -> np.ndarray:
    """The passage played rho times as fast: frames linearly interpolated along time (a
    global tempo change; at 20 fps onsets smear by at most one frame)."""
    frames = spec.shape[1]
    n = max(1, round(frames / rho))
    pos = np.linspace(0.0, frames - 1, n)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    w = (pos - lo).astype(np.float32)
    return (spec[:, lo] * (1 - w) + spec[:, hi] * w).astype(np.float32)


def recolour(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The spectrogram as if played by another instrument colour: magnitudes times a random
    smooth gain curve over frequency (global gain + tilt + three cosines), back through the
    log10(1 + x) compression of the spectrogram."""
    n = spec.shape[0]
    pos = np.linspace(0.0, 1.0, n)
    db = rng.uniform(-TIMBRE_GAIN_DB, TIMBRE_GAIN_DB) + rng.uniform(-1, 1) * TIMBRE_TILT_DB * (
        pos - 0.5)
    for k in (1, 2, 3):
        db = db + rng.uniform(-TIMBRE_BUMPS_DB, TIMBRE_BUMPS_DB) * np.cos(
            np.pi * k * pos + rng.uniform(0, 2 * np.pi))
    return equalise(spec, db)


def fine_equalise(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The spectrogram through a random equaliser with a gain for every band (normal, sd
    FINE_EQ_DB, smoothed over three bands)."""
    return equalise(spec, np.convolve(rng.normal(0.0, FINE_EQ_DB, spec.shape[0]),
                                      [0.25, 0.5, 0.25], "same"))


def equalise(spec: np.ndarray, db: np.ndarray | float) -> np.ndarray:
    """The spectrogram's magnitudes times a gain in dB (one for every band, or one for all),
    back through the log10(1 + x) compression of the spectrogram."""
    gain = (10.0 ** (np.asarray(db, np.float64) / 20.0)).astype(np.float32)
    magnitude = np.power(np.float32(10.0), spec) - 1.0
    return np.log10(1.0 + magnitude * (gain[:, None] if gain.ndim else gain)).astype(np.float32)


def random_piano(rng: np.random.Generator) -> dict:
    """A random piano for `replay`: its harmonic slope, the slope's change with pitch, each
    harmonic's own gain (dB), and the level and colour of its onset thump."""
    own = rng.normal(0.0, PIANO_SPREAD_DB, PIANO_HARMONICS)
    own[0] = 0.0
    centre = rng.uniform(*PIANO_THUMP_BAND)  # a low knock, with a faint broadband rest
    colour = 0.5 ** (np.abs(np.arange(N_BINS) - centre) / PIANO_THUMP_WIDTH) + 0.03
    return {"slope": float(rng.uniform(*PIANO_SLOPE_DB)),
            "pitch": float(rng.uniform(-PIANO_PITCH_DB, PIANO_PITCH_DB)),
            "own": own, "thump": float(rng.uniform(*PIANO_THUMP)),
            "colour": colour.astype(np.float32)}


@lru_cache(maxsize=128)
def _harmonic_weights(pitch: int) -> np.ndarray:
    """(PIANO_HARMONICS, N_BINS): how much of each band the note's h-th harmonic fills (the
    filterbank's row at its FFT bin, scaled to 1 at its best band; zeros above the bank)."""
    bank = log_filterbank()
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    k = np.rint(f0 * np.arange(1, PIANO_HARMONICS + 1) * FRAME_SIZE / SAMPLE_RATE).astype(int)
    rows = np.zeros((PIANO_HARMONICS, bank.shape[1]), np.float32)
    inside = k < bank.shape[0]
    rows[inside] = bank[k[inside]]
    peak = rows.max(axis=1, keepdims=True)
    return np.divide(rows, peak, out=np.zeros_like(rows), where=peak > 0)


def replay(spec: np.ndarray, notes: np.ndarray, piano: dict,
           rng: np.random.Generator) -> np.ndarray:
    """The passage's spectrogram as `piano` (`random_piano`) would play it: each note's
    harmonics scaled by the piano's gain for their number, from the onset until
    PIANO_RING_FRAMES after the offset, and a decaying burst of noise at every onset.

    notes: the passage's notes (NOTE_DTYPE, onset_frame from the passage start). A band that
    several notes' harmonics share takes the mean of their gains, weighted by how much of the
    band each fills."""
    magnitude = np.power(10.0, spec.astype(np.float64)) - 1.0
    n = spec.shape[1]
    octaves = np.log2(np.arange(1, PIANO_HARMONICS + 1))
    gain_sum, weight_sum = np.zeros_like(magnitude), np.zeros_like(magnitude)
    for note in notes:
        on = int(note["onset_frame"])
        off = on + int(round((float(note["offset"]) - float(note["onset"])) * FPS))
        a, b = max(on, 0), min(max(off, on + 1) + PIANO_RING_FRAMES, n)
        if b <= a:
            continue
        slope = piano["slope"] + piano["pitch"] * (int(note["pitch"]) - 60) / 12.0
        gains = slope * octaves + piano["own"]
        weights = _harmonic_weights(int(note["pitch"]))
        gain_sum[:, a:b] += (gains @ weights)[:, None]
        weight_sum[:, a:b] += weights.sum(axis=0)[:, None]
    magnitude *= 10.0 ** (gain_sum / np.maximum(weight_sum, 1.0) / 20.0)
    if piano["thump"] > 0:
        onsets = np.unique(notes["onset_frame"])
        onsets = onsets[(onsets >= 0) & (onsets < n)]
        noise = rng.uniform(0.5, 1.0, (magnitude.shape[0], len(onsets))) * piano["colour"][:, None]
        level = piano["thump"] * magnitude[:, onsets].max(axis=0, keepdims=True)
        magnitude[:, onsets] += level * noise
        after = onsets[onsets + 1 < n]
        magnitude[:, after + 1] += PIANO_THUMP_DECAY * level[:, :len(after)] * noise[:, :len(after)]
    return np.log10(1.0 + magnitude).astype(np.float32)


def room(spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The spectrogram as if played louder or softer in a more reverberant room: a random
    reverberation tail (`reverberate`) and a random power of the dynamics (`dynamics`)."""
    tail_s = float(np.exp(rng.uniform(*np.log(ROOM_TAIL_S))))
    spec = reverberate(spec, tail_s, float(rng.uniform(*ROOM_WET)))
    return dynamics(spec, float(np.exp(rng.uniform(*np.log(ROOM_POWER)))))


def reverberate(spec: np.ndarray, tail_s: float, wet: float) -> np.ndarray:
    """Each band's magnitude plus `wet` times an exponentially decaying tail of `tail_s`
    seconds (a one-pole filter over frames, scipy's lfilter), back through the log10(1 + x)
    compression of the spectrogram."""
    magnitude = np.power(10.0, spec.astype(np.float64)) - 1.0
    a = np.exp(-1.0 / (tail_s * FPS))
    tail = lfilter([1.0 - a], [1.0, -a], magnitude, axis=1)
    return np.log10(1.0 + magnitude + wet * tail).astype(np.float32)


def dynamics(spec: np.ndarray, power: float) -> np.ndarray:
    """Magnitudes raised to `power` relative to the loudest (below 1: compressed, softer notes
    nearer the loud ones; above 1: expanded)."""
    magnitude = np.power(10.0, spec.astype(np.float64)) - 1.0
    peak = magnitude.max()
    if peak > 0:
        magnitude = peak * (magnitude / peak) ** power
    return np.log10(1.0 + magnitude).astype(np.float32)


def shift_rows(strip: np.ndarray, shift: int) -> np.ndarray:
    """Move the strip content down by `shift` rows (up if negative), filling with white."""
    if shift == 0:
        return strip
    out = np.full_like(strip, 255)
    if shift > 0:
        out[shift:] = strip[: STRIP_HEIGHT - shift]
    else:
        out[:shift] = strip[-shift:]
    return out


def collate(items: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, torch.Tensor]:
    """Concatenate snippet sequences; lengths say where each passage's snippets are."""
    sheets, audios, index = zip(*items, strict=True)
    return {
        "sheet": torch.from_numpy(np.concatenate(sheets))[:, None],  # (sum n_s, 1, 80, 90)
        "sheet_lengths": torch.tensor([len(s) for s in sheets]),
        "audio": torch.from_numpy(np.concatenate(audios))[:, None],  # (sum n_a, 1, 92, 20)
        "audio_lengths": torch.tensor([len(a) for a in audios]),
        "index": torch.tensor(index),
    }


class EpochSampler(Sampler[int]):
    """`count` passages drawn at random each epoch (a fresh permutation, repeated as needed).

    Deterministic from (seed, epoch, rank), so every process of a distributed run draws its own
    share, and a resumed run draws what the uninterrupted one would have.
    """

    def __init__(self, n: int, count: int, *, seed: int, rank: int = 0, world: int = 1):
        self.n, self.count, self.seed, self.rank, self.world = n, count, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count // self.world

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        reps = -(-self.count // self.n)
        order = torch.cat([torch.randperm(self.n, generator=g) for _ in range(reps)])
        yield from order[: len(self) * self.world][self.rank :: self.world].tolist()


class PieceSampler(EpochSampler):
    """`count` passages an epoch in groups of `group` neighbouring systems of one piece (not in
    the paper): a piece is drawn (by its share of the passages), then a run of `group` of its
    systems in reading order from a random start, each in a random one of its renditions (a
    piece with fewer systems repeats them). A batch of B passages then holds B / group pieces
    (group divides B), and each passage's hardest negatives, the
    systems beside it, are in its batch: what a clip cut anywhere must tell apart (its own
    system from the next one, its piece from the others) rather than random systems of other
    pieces, which the paper's loss has long since told apart.

    pieces[i], systems[i]: the piece and system of training passage i. Deterministic from
    (seed, epoch, rank) as EpochSampler; each rank draws its own groups.
    """

    def __init__(self, pieces: list, systems: list[int], count: int, group: int, *, seed: int,
                 rank: int = 0, world: int = 1):
        super().__init__(len(pieces), count, seed=seed, rank=rank, world=world)
        self.group = group
        by_piece: dict = {}
        for i, (piece, system) in enumerate(zip(pieces, systems, strict=True)):
            by_piece.setdefault(piece, {}).setdefault(system, []).append(i)
        # per piece: its systems in reading order, each with the passages that show it
        self.pieces = [[runs[k] for k in sorted(runs)] for runs in by_piece.values()]
        sizes = np.array([sum(len(r) for r in runs) for runs in self.pieces], float)
        self.weights = sizes / sizes.sum()

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        out: list[int] = []
        while len(out) < len(self):
            runs = self.pieces[rng.choice(len(self.pieces), p=self.weights)]
            take = min(self.group, len(runs))
            start = int(rng.integers(len(runs) - take + 1))
            # a piece shorter than a group plays its systems again (other renditions, which
            # the loss does not count as negatives), so that every group fills `group` places
            # and batches start on group boundaries
            out += [int(rng.choice(runs[start + k % take])) for k in range(self.group)]
        yield from out[: len(self)]
