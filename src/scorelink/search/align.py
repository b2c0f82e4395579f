"""Align a whole recording to its score: which system sounds when, in the order played.

The recording's spectrogram is cut on the audio snippet grid (AUDIO_SNIPPET_HOP frames, 0.9 s).
Every segment [i, i + k) of the grid, k from MIN_SECONDS to MAX_SECONDS long, is embedded with
the passage model exactly as a passage of that span would be (the GRU runs once per start and
its state after k snippets is the segment's summary), and compared with every system of the
score (cosine similarity). A semi-Markov decoder then picks the segmentation of the recording
into systems and gaps that maximises the time-weighted similarity less a tempo prior (each
system's duration near what the current tempo, which may change, predicts), where going on to
the next system in reading order is free and any other move (a repeat, da capo, a skip, starting
elsewhere than the first system, ending elsewhere than the last) costs `jump_penalty`, in
proportion to how long a system lasts in the recording; playing the same system again costs a
little. Silence or foreign audio may be left unassigned as gaps (pausing after a system keeps
the place in the score).

`align(spec, sheet, embedder)` returns an `Alignment`: segments in played order with start, end,
system (0-based reading-order index) and confidence; `plot_alignment` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scorelink.constants import AUDIO_SNIPPET_FRAMES, AUDIO_SNIPPET_HOP, FPS, N_BINS
from scorelink.errors import ScoreError, ScorelinkError
from scorelink.search.embed import Embedder

STEP_SECONDS = AUDIO_SNIPPET_HOP / FPS  # 0.9 s: segment boundaries fall on this grid
MIN_SECONDS = 1.8  # shortest segment a system may take
MAX_SECONDS = 60.0  # longest
JUMP_SHARE = 0.3  # a jump must gain this much similarity per step, over the steps a system
# of median width lasts when the score is played once in the recording, against going on
MIN_JUMP = 0.5  # ... and at least this much, in similarity x grid steps
# Chosen on validation (chorales, MSMD, real-scan performances; docs/align.md): a fixed 0.5
# let the path wander between look-alike systems of long piano pieces; a fixed 4 could not
# afford the short systems' repeats at fast tempi. Scaled with the system's length, it does both.
REPEAT_PENALTY = 0.5  # the same system again at once (a written repeat of one line): the
# similarity cannot see it, only the duration prior can, so it must be cheap
DURATION_WEIGHT = 4.0  # tempo prior: what a segment e (2.7) times longer or shorter than the
# current tempo makes its system last costs, in similarity x grid steps
TEMPO_STEP = 1.2  # tempo classes: seconds per system of median width, this ratio apart
TEMPO_RANGE = 3.0  # ... at most this factor either way of the tempo that plays the whole score
# once in the whole recording (every repeat taken, or half the score left out, stay inside it).
# Without a bound, on long recordings the decoder chose slow tempi whose long segments (20-60 s)
# summarise to vectors near one "hub" system and outscored the right ones (a 10-minute chorale
# medley: 0 % of onsets within 1 s).
TEMPO_CHANGE = 0.25  # moving the tempo one class (1.2 times) between two segments: cheap
# enough for a Largo introduction before an Allegro, dear enough to keep one tempo through
# similar systems (validation, docs/align.md; one global tempo did worse on real performances)
HALVES_SHARE = 0.5  # weight of a segment's halves against its system's halves (`similarities`;
# validation, `benchmarks/align_decoder.py`: onsets within 1 s at tempo 0.5 / 1 / 2, chorales
# 74.5 / 89.8 / 93.9 -> 80.6 / 93.9 / 94.9 %, MSMD 75.3 / 93.0 / 93.3 -> 83.3 / 97.0 / 96.7 %)
READ_SHARE = 0.3  # scans and page images: weight of the read notes' similarity added to the
# image's (`read_similarities`). Chosen on validation (`benchmarks/align_quality.py --methods
# image+starts,image+read`, the read notes' starts in both; docs/align.md): onsets within 0.5 s
# at 0 / 0.3 / 0.6 (0.3 with chroma alone): the real scans' performances 76.7 / 81.2 / 80.2
# (80.7) %, chorales 94.0 / 95.0 / 94.5 (95.0) %; at 0 / 0.3: MSMD 95.4 / 96.4 %, played out of
# order (`--jumps`) chorales 86.7 / 87.5 %, MSMD 93.1 / 94.4 %. On test, paired: MSMD with its
# out-of-order renditions +0.8 [+0.3, +1.4] points, the rest within their intervals of zero
GAP_LEVEL = 0.15  # similarity credited per grid step left unassigned (silence, foreign audio)
MIN_SECONDS_PER_SYSTEM = 1.0  # a recording shorter than this per system cannot play the score


class AlignError(ScorelinkError):
    """A recording cannot be aligned to a score (no music, far too short, nothing matches)."""


@dataclass(frozen=True)
class Segment:
    """One stretch of the recording: a system played (system >= 0) or a gap (system == -1)."""

    system: int  # 0-based index in reading order, -1 for a gap
    start: float  # seconds
    end: float
    similarity: float  # cosine similarity of the segment's embedding and the system's (plus
    # READ_SHARE x the read notes' fit, `read_similarities`, where the systems were read)
    confidence: float  # 0..1


@dataclass
class Alignment:
    segments: list[Segment]  # systems and gaps in played order
    matrix: np.ndarray = field(repr=False)  # (steps, systems) similarity for display
    step_seconds: float = STEP_SECONDS
    measures: list = field(default_factory=list)  # measures.MeasureSegment in played order,
    # where the score has notes (`align_files`)
    evidence: str = "image"  # what decided the systems: "image" (this module), "image+read"
    # (this module with notes read off the systems' images) or "notes" (`follow.align_notes`)

    @property
    def systems(self) -> list[Segment]:
        return [s for s in self.segments if s.system >= 0]


# --- embedding every segment --------------------------------------------------------------


def segment_embeddings(embedder: Embedder, spec: np.ndarray, *,
                       max_steps: int) -> torch.Tensor:
    """Unit vectors of every grid segment: (steps, max_steps, D), where [i, k - 1] embeds the
    spectrogram span of the k snippets from grid step i (frames [18 i, 18 (i + k - 1) + 20)),
    equal to `embedder.audio(spec, [(18 i, 18 (i + k - 1) + 20)])`. Snippets past the end of
    the spectrogram are zero-padded; so are segments running past it."""
    if spec.ndim != 2 or spec.shape[0] != N_BINS:
        raise ValueError(f"expected a ({N_BINS}, frames) spectrogram, got {spec.shape}")
    hop, size = AUDIO_SNIPPET_HOP, AUDIO_SNIPPET_FRAMES
    steps = max(1, -(-spec.shape[1] // hop))
    padded = np.zeros((N_BINS, steps * hop + size), np.float32)
    padded[:, : spec.shape[1]] = spec
    snippets = np.stack([padded[:, j * hop: j * hop + size] for j in range(steps)])
    tower = embedder.model.audio
    feats = embedder._features("audio", snippets)  # (steps, snippet_dim)
    feats = torch.cat([feats, feats.new_zeros(max_steps, feats.shape[1])])
    out = []
    with torch.no_grad():
        for a in range(0, steps, 256):
            starts = torch.arange(a, min(a + 256, steps))
            x = feats[starts[:, None] + torch.arange(max_steps)[None, :]]  # (B, K, 32)
            hidden, _ = tower.rnn(x)  # (B, K, H): the state after each snippet
            out.append(torch.nn.functional.normalize(tower.proj(hidden), dim=-1))
    return torch.cat(out)


def similarities(embedder: Embedder, spec: np.ndarray, sheet: np.ndarray, *,
                 halves: tuple[np.ndarray, np.ndarray] | None = None,
                 min_seconds: float = MIN_SECONDS,
                 max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Similarity of every segment with every system: (steps, K, systems) float32 with
    [i, k - k_min] for the segment of k steps from step i; and k_min.

    Without `halves`, the cosine of the segment's and the system's vectors. With halves (the
    systems' first- and second-half vectors, `Embedder.sheet_with_halves`), a segment long
    enough to halve scores (1 - HALVES_SHARE) x that cosine + HALVES_SHARE x the mean cosine of
    its first half with the system's first half and of its second half with the second: where
    a system begins and ends is then seen in the segment's halves, not only in its summary."""
    k_min = max(1, round(min_seconds / STEP_SECONDS))
    k_max = max(k_min, round(max_seconds / STEP_SECONDS))
    emb = segment_embeddings(embedder, spec, max_steps=k_max)[:, k_min - 1:]  # (N, K, D)

    def cosines(vectors: np.ndarray) -> np.ndarray:
        return (emb @ torch.from_numpy(np.ascontiguousarray(vectors, np.float32)).T).numpy()

    sim = cosines(sheet)
    if halves is None:
        return sim, k_min
    first, second = (cosines(h) for h in halves)
    n, n_k = sim.shape[:2]
    for c in range(n_k):
        k = k_min + c
        k1 = k // 2
        if k1 < k_min:
            continue
        later = np.minimum(np.arange(n) + k1, n - 1)  # the second half starts k1 steps on
        both = 0.5 * (first[:, k1 - k_min] + second[later, k - k1 - k_min])
        sim[:, c] = (1 - HALVES_SHARE) * sim[:, c] + HALVES_SHARE * both
    return sim, k_min


def read_similarities(spec: np.ndarray, read: list[np.ndarray], n_steps: int, n_k: int,
                      k_min: int) -> np.ndarray:
    """How well each segment's sound fits each system's read notes: (steps, K, systems) like
    `similarities`, centred on each segment's mean over the systems (a segment that fits every
    system alike gains nothing).

    read: each system's notes (n, 3) [onset, offset, MIDI pitch] read off its image
    (`reading.read_systems`). A segment's notes-matcher features (`notes.audio_features`: chroma
    and pitch) are averaged over its span, and so are the system's notes' (`notes_features`);
    the score is the mean of the two averages' cosine and of their halves' (first half with
    first half, second with second). Order within a half does not count, so the tempo inside a
    segment need not be known: no alignment per segment and system (there are millions), two
    matrix products per segment length. It tells apart systems whose images look alike but
    whose notes differ (the strains of a rag, a piano piece's look-alike lines)."""
    from scorelink.search.notes import FEATURE_FPS, audio_features, notes_features

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)

    audio = audio_features(spec)  # (F, T)
    csum = np.concatenate([np.zeros((audio.shape[0], 1)),
                           np.cumsum(audio, axis=1, dtype=np.float64)], axis=1)
    whole, first, second = [], [], []
    for notes in read:
        if len(notes) < 2:  # nothing read: no evidence either way
            whole.append(np.zeros(audio.shape[0]))
            first.append(whole[-1])
            second.append(whole[-1])
            continue
        f = notes_features(notes - [notes[0, 0], notes[0, 0], 0])
        h = max(1, f.shape[1] // 2)
        whole.append(f.mean(axis=1))
        first.append(f[:, :h].mean(axis=1))
        second.append(f[:, h:].mean(axis=1) if f.shape[1] > h else f[:, :h].mean(axis=1))
    whole, first, second = (unit(np.stack(v)) for v in (whole, first, second))
    step = STEP_SECONDS * FEATURE_FPS  # feature frames a grid step
    starts = np.minimum(np.round(np.arange(n_steps) * step).astype(np.int64), audio.shape[1])
    out = np.zeros((n_steps, n_k, len(read)), np.float32)

    def mean_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return unit((csum[:, b] - csum[:, a]).T)

    for c in range(n_k):
        span = (k_min + c) * step
        ends = np.minimum(starts + int(round(span)), audio.shape[1])
        middles = np.minimum(starts + int(round(span / 2)), audio.shape[1])
        out[:, c] = 0.5 * mean_features(starts, ends) @ whole.T + 0.25 * (
            mean_features(starts, middles) @ first.T + mean_features(middles, ends) @ second.T)
    return out - out.mean(axis=2, keepdims=True)


# --- decoding -------------------------------------------------------------------------------


def decode(sim: np.ndarray, k_min: int, *, tempi: np.ndarray | None = None,
           widths: np.ndarray | None = None, jump_penalty: float = MIN_JUMP,
           repeat_penalty: float = REPEAT_PENALTY, gap_level: float = GAP_LEVEL,
           duration_weight: float = DURATION_WEIGHT,
           tempo_change: float = TEMPO_CHANGE) -> tuple[list[tuple[int, int, int]], float]:
    """Best segmentation of the grid into (start step, end step, system or -1 for a gap), and
    its score.

    sim: (N, K, S) from `similarities`. A system segment of k steps scores k x its similarity,
    a gap step scores gap_level. Entering system s is free after system s - 1 or a gap that
    followed s - 1 (or, for s = 0, at the start), costs repeat_penalty right after s itself,
    and jump_penalty from anywhere else; ending elsewhere than in or after the last system also
    costs jump_penalty.

    tempi: (T,) tempo classes, in steps a system of median `widths` (default: all alike) lasts.
    The path carries one class at a time: a segment of k steps for system s at class t pays
    duration_weight x log(k / (tempi[t] x width[s]))^2, and moving to a class c classes away
    costs c x tempo_change (a slow introduction, then an Allegro). The first segment's class is
    free. Without tempi, durations are free.
    """
    n, n_k, n_s = sim.shape
    ks = np.arange(k_min, k_min + n_k)
    w = np.ones(n_s) if widths is None else np.asarray(widths, float) / np.median(widths)
    if tempi is None:
        tempi, duration_weight = np.ones(1), 0.0
    n_t = len(tempi)
    expected = np.clip(np.asarray(tempi, float)[:, None] * w[None, :], 1, None)  # (T, S)
    prior = duration_weight * np.log(ks[:, None, None] / expected[None]) ** 2  # (K, T, S)
    change = tempo_change * np.abs(np.arange(n_t)[:, None] - np.arange(n_t)[None, :])  # (T, T')
    neg = -np.inf
    systems = np.broadcast_to(np.arange(n_s), (n_t, n_s))
    play = np.full((n + 1, n_t, n_s), neg)  # best score of [0, j) ending with system s at t
    play_k = np.zeros((n + 1, n_t, n_s), np.int32)  # ... its last segment's length
    gap = np.full((n + 1, n_t, n_s + 1), neg)  # ... ending in a gap after system s - 1
    gap[0, :, 0] = 0.0  # (0: before all)
    gap_from_play = np.zeros((n + 1, n_t, n_s + 1), bool)
    entry = np.full((n + 1, n_t, n_s), neg)  # best score of [0, i) ready to enter s at t
    entry_from = np.zeros((n + 1, n_t, n_s, 3), np.int32)  # (kind 0 play/1 gap, class, state)

    def _entries(i: int) -> None:
        after = np.concatenate([np.full((n_t, 1), neg), play[i, :, :-1]], axis=1)  # s - 1
        best_play, best_gap = play[i].max(1), gap[i].max(1)  # (T,)
        jump_kind = (best_gap > best_play).astype(np.int32)
        jump_state = np.where(jump_kind == 0, play[i].argmax(1), gap[i].argmax(1))
        jump = np.maximum(best_play, best_gap) - jump_penalty
        ways = np.stack([after, gap[i, :, :n_s], play[i] - repeat_penalty,
                         np.broadcast_to(jump[:, None], (n_t, n_s))])  # (4, T, S)
        way = ways.argmax(0)
        value = ways.max(0)
        kind = np.choose(way, [0, 1, 0, jump_kind[:, None]])
        state = np.choose(way, [systems - 1, systems, systems, jump_state[:, None]])
        # then into class t from the best class t' (change[t, t'] apart)
        total = value[None] - change[:, :, None]  # (T, T', S)
        src = total.argmax(1)  # (T, S)
        entry[i] = np.take_along_axis(total, src[:, None], 1)[:, 0]
        entry_from[i, :, :, 0] = np.take_along_axis(kind, src, 0)
        entry_from[i, :, :, 1] = src
        entry_from[i, :, :, 2] = np.take_along_axis(state, src, 0)

    _entries(0)
    for j in range(1, n + 1):
        valid = ks <= j
        if valid.any():
            kv = ks[valid]
            starts = j - kv
            rows = np.nonzero(valid)[0]
            cand = (entry[starts] + (kv[:, None] * sim[starts, rows])[:, None, :]
                    - prior[rows])  # (K', T, S)
            best = cand.argmax(0)
            play[j] = np.take_along_axis(cand, best[None], 0)[0]
            play_k[j] = kv[best]
        stay = gap[j - 1]
        enter = np.concatenate([np.full((n_t, 1), neg), play[j - 1]], axis=1)
        gap[j] = np.maximum(stay, enter) + gap_level
        gap_from_play[j] = enter > stay
        _entries(j)

    # trace back from the best final state; stopping short of the last system is a jump
    play[n, :, :-1] -= jump_penalty
    gap[n, :, :-1] -= jump_penalty
    total = float(max(play[n].max(), gap[n].max()))
    kind = 0 if play[n].max() >= gap[n].max() else 1
    final = play[n] if kind == 0 else gap[n]
    t, state = (int(v) for v in np.unravel_index(final.argmax(), final.shape))
    path: list[tuple[int, int, int]] = []
    j = n
    while j > 0:
        if kind == 0:
            i = j - int(play_k[j, t, state])
            path.append((i, j, state))
            kind, t, state = (int(v) for v in entry_from[i, t, state])
            j = i
        else:
            came_from_play = bool(gap_from_play[j, t, state])
            if path and path[-1][2] == -1 and path[-1][0] == j:
                path[-1] = (j - 1, path[-1][1], -1)
            else:
                path.append((j - 1, j, -1))
            j -= 1
            if came_from_play:
                kind, state = 0, state - 1
    return path[::-1], total


def decode_tempo(sim: np.ndarray, k_min: int, *, widths: np.ndarray | None = None,
                 jump_penalty: float | None = None, **options) -> list[tuple[int, int, int]]:
    """`decode` with tempo classes TEMPO_STEP apart: a system of median width lasting from
    1/TEMPO_RANGE to TEMPO_RANGE times what plays the score once in the recording's length,
    within the shortest and the longest segment. jump_penalty: default JUMP_SHARE x that
    length in steps, at least MIN_JUMP."""
    n, n_k, n_s = sim.shape
    w = np.ones(n_s) if widths is None else np.asarray(widths, float)
    w = w / np.median(w)
    k_max = k_min + n_k - 1
    once = n / w.sum()  # steps per system of median width
    if jump_penalty is None:
        jump_penalty = max(MIN_JUMP, JUMP_SHARE * once)
    low = min(max(float(k_min), once / TEMPO_RANGE), float(k_max))
    high = max(min(float(k_max), once * TEMPO_RANGE), low)
    tempi = low * TEMPO_STEP ** np.arange(int(np.log(high / low) / np.log(TEMPO_STEP) + 1e-9) + 1)
    return decode(sim, k_min, tempi=tempi, widths=w, jump_penalty=jump_penalty, **options)[0]


# --- the whole thing ------------------------------------------------------------------------


def align(spec: np.ndarray, sheet: np.ndarray, embedder: Embedder, *,
          halves: tuple[np.ndarray, np.ndarray] | None = None,
          widths: np.ndarray | None = None, jump_penalty: float | None = None,
          gap_level: float = GAP_LEVEL, max_seconds: float = MAX_SECONDS,
          read: list[np.ndarray] | None = None) -> Alignment:
    """Align a (92, frames) spectrogram to a score's (S, D) system embeddings (reading order).

    halves: the systems' first- and second-half vectors (`Embedder.sheet_with_halves`, kept in
    indexes too): they place the systems' boundaries better (`similarities`).

    widths: (S,) the systems' printed widths (any unit; default: all alike); a system's
    duration is expected in proportion to it, at the tempo the decoder follows (it may change).

    read: each system's notes read off its image (scans, page images; `reading.read_systems`):
    READ_SHARE x `read_similarities` is added to the image's similarity.
    """
    check_length(spec, len(sheet))
    seconds = spec.shape[1] / FPS
    sim, k_min = similarities(embedder, spec, sheet, halves=halves, max_seconds=max_seconds)
    read = read if read is not None and any(len(n) >= 2 for n in read) else None  # none read
    if read is not None:
        sim += READ_SHARE * read_similarities(spec, read, sim.shape[0], sim.shape[1], k_min)
    path = decode_tempo(sim, k_min, widths=widths, jump_penalty=jump_penalty,
                        gap_level=gap_level)
    segments = []
    for i, j, s in path:
        if s < 0:
            segments.append(Segment(-1, i * STEP_SECONDS, min(j * STEP_SECONDS, seconds),
                                    gap_level, 0.0))
            continue
        row = sim[i, j - i - k_min]  # (S,)
        segments.append(Segment(s, i * STEP_SECONDS, min(j * STEP_SECONDS, seconds),
                                float(row[s]), confidence(row, s)))
    return Alignment(segments, display_matrix(sim, k_min, path),
                     evidence="image" if read is None else "image+read")


def check_length(spec: np.ndarray, n_systems: int) -> None:
    """Raise ScoreError for a score without systems, AlignError for a (N_BINS, T) recording
    far too short to play n_systems (under MIN_SECONDS_PER_SYSTEM each)."""
    if n_systems == 0:
        raise ScoreError("the score has no systems of music")
    seconds = spec.shape[1] / FPS
    if seconds < MIN_SECONDS_PER_SYSTEM * n_systems:
        raise AlignError(f"the recording lasts {seconds:.1f} s, far too short for a score of "
                         f"{n_systems} systems (at least {MIN_SECONDS_PER_SYSTEM * n_systems:.0f}"
                         " s); give only the pages it plays")


def confidence(row: np.ndarray, system: int) -> float:
    """How sure a segment's system is, 0..1, from its similarity to all systems: a softmax
    at a temperature that spreads the model's similarity range."""
    z = np.exp((row - row.max()) / 0.05)
    return float(z[system] / z.sum())


def display_matrix(sim: np.ndarray, k_min: int, path: list[tuple[int, int, int]]) -> np.ndarray:
    """(steps, systems): each step's similarity with each system, for a segment of the
    alignment's median system length centred on the step."""
    lengths = [j - i for i, j, s in path if s >= 0] or [k_min]
    k = int(np.clip(np.median(lengths), k_min, k_min + sim.shape[1] - 1))
    n = sim.shape[0]
    starts = np.clip(np.arange(n) - k // 2, 0, n - 1)
    return sim[starts, k - k_min]


def plot_alignment(alignment: Alignment, path: str | Path, *, labels: list[str] | None = None,
                   title: str = "") -> Path:
    """The similarity matrix (time x systems) with the decoded path drawn over it, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = alignment.matrix
    n_sys = m.shape[1]
    fig, ax = plt.subplots(figsize=(min(16, 4 + m.shape[0] * 0.02), min(12, 2 + n_sys * 0.3)))
    extent = (0, m.shape[0] * alignment.step_seconds, n_sys - 0.5, -0.5)
    im = ax.imshow(m.T, aspect="auto", origin="upper", extent=extent, cmap="magma",
                   interpolation="nearest")
    for seg in alignment.systems:
        ax.plot([seg.start, seg.end], [seg.system, seg.system], color="cyan", lw=3)
    starts = [seg for seg in alignment.systems]
    for a, b in zip(starts, starts[1:], strict=False):
        ax.plot([a.end, b.start], [a.system, b.system], color="cyan", lw=1, ls=":")
    ax.set_xlabel("recording (s)")
    ax.set_ylabel("system (reading order)")
    if labels:
        step = max(1, n_sys // 30)
        ax.set_yticks(range(0, n_sys, step))
        ax.set_yticklabels(labels[::step], fontsize=7)
    fig.colorbar(im, ax=ax, label={"notes": "chroma similarity",
                                   "image+read": "image cosine + read notes' fit"}.get(
                                       alignment.evidence, "cosine similarity"))
    ax.set_title(title or "recording against score: similarity and alignment")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --- files in, rows out ---------------------------------------------------------------------


def align_files(score: str | Path, recording: str | Path, *, embedder: Embedder | None = None,
                image_only: bool = False, **options) -> tuple[Alignment, list[dict]]:
    """Read a score (file, PDF, page images or a folder of them) and a recording and align
    them; also returns the score's systems (`collect.score_systems`) the alignment indexes.

    Where the score has notes (a score file) they decide the systems and measures
    (`follow.align_notes`); scans and page images, or image_only=True, use the passage model's
    embeddings (`align`; `embedder` needed), with measure times from the notes where the score
    has them (`measures.refine`). Scans and page images (not with image_only) are aligned with
    the notes the note reader reads off them too (`read_similarities`), then have their systems'
    starts sharpened by those notes (`reading.refine_starts`)."""
    from scorelink.data.spectrogram import spectrogram
    from scorelink.search.collect import score_systems
    from scorelink.search.follow import align_notes, has_notes
    from scorelink.search.measures import refine
    from scorelink.search.recordings import read_audio

    systems = score_systems(score)
    spec = spectrogram(read_audio(recording))
    if not image_only and has_notes(systems):
        check_length(spec, len(systems))
        return align_notes(spec, systems), systems
    if embedder is None:
        raise ValueError("aligning by the image needs an embedder")
    sheet, *halves = embedder.sheet_with_halves(np.stack([s["strip"] for s in systems]))
    read = None
    if not image_only and all(s.get("notes") is None for s in systems):  # scans, page images
        from scorelink.search.reading import read_systems, refine_starts

        read = read_systems([s["strip"] for s in systems])
    alignment = align(spec, sheet, embedder, halves=tuple(halves), read=read, **options)
    if read is not None:
        alignment.segments = refine_starts(spec, alignment.segments, read)
    alignment.measures = refine(spec, alignment, systems)
    return alignment, systems


def rows(alignment: Alignment, systems: list[dict]) -> list[dict]:
    """The played systems as people number them: page and system (on its page) 1-based,
    start and end in seconds, confidence 0..1, evidence ("notes", "image+read" or "image")."""
    return [{"page": systems[s.system]["page"] + 1, "system": systems[s.system]["on_page"] + 1,
             "start": round(s.start, 2), "end": round(s.end, 2),
             "confidence": round(s.confidence, 3), "evidence": alignment.evidence}
            for s in alignment.systems]


def measure_rows(alignment: Alignment, systems: list[dict]) -> list[dict]:
    """The played measures as people number them: page and system 1-based, "measure" the
    number the score prints ("0" for a pickup), "index" the measure's place in the score
    counted from 1, start and end in seconds. Empty where the score has no notes."""
    return [{"page": systems[m.system]["page"] + 1, "system": systems[m.system]["on_page"] + 1,
             "measure": m.label, "index": m.measure + 1, "start": round(m.start, 2),
             "end": round(m.end, 2)} for m in alignment.measures]
