"""Notes in the index, and audio matched to them: chroma, subsequence DTW against a naive
reference, tempo from half to double, fusion with the model, indexes made before notes."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import soundfile

from scorelink.cli import main
from scorelink.constants import SAMPLE_RATE
from scorelink.data.spectrogram import spectrogram
from scorelink.search import collect, query
from scorelink.search.embed import Embedder
from scorelink.search.index import Index, Pending
from scorelink.search.notes import (
    FEATURE_FPS,
    NoteMatcher,
    audio_chroma,
    audio_features,
    audio_onsets,
    notes_chroma,
    notes_features,
    notes_onsets,
    subsequence_dtw,
)


def _synth(notes: np.ndarray, *, tempo: float = 1.0, seconds: float | None = None) -> np.ndarray:
    """Plain additive piano-like tones for notes (n, 3) [onset, offset, pitch], played `tempo`
    times as fast as written."""
    end = notes[:, 1].max() / tempo + 0.5 if seconds is None else seconds
    out = np.zeros(int(end * SAMPLE_RATE), np.float32)
    for onset, offset, pitch in notes:
        a, b = int(onset / tempo * SAMPLE_RATE), int(offset / tempo * SAMPLE_RATE)
        if a >= len(out):
            continue
        t = np.arange(min(b, len(out)) - a) / SAMPLE_RATE
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5) if k * f0 < 5000)
        out[a:a + len(t)] += 0.1 * np.exp(-2 * t) * tone
    return out


def _random_piece(rng, systems: int, seconds_per_system: float = 8.0) -> list[np.ndarray]:
    """Notes of a made-up piece, one (n, 3) array per system, chords every quarter second."""
    out, t = [], 0.0
    for _ in range(systems):
        rows = []
        while t < (len(out) + 1) * seconds_per_system:
            length = rng.choice([0.25, 0.5, 1.0])
            for p in rng.choice(np.arange(48, 84), size=3, replace=False):
                rows.append((t, t + length, p))
            t += length
        out.append(np.array(rows, float))
    return out


def _naive_dtw(query: np.ndarray, score: np.ndarray, barrier: np.ndarray, penalty: float,
               jumps: tuple | None = None):
    """Cost, start and middle (the column where the path reaches query row n // 2) of the best
    path ending at each column, cell by cell; a step off the diagonal pays `penalty`; jumps
    (groups, targets, jump penalty): a one-frame step from any column of a target's group to
    the target, taken where strictly cheaper, from the first of the cheapest."""
    n, m = query.shape[1], score.shape[1]
    half = n // 2
    dist = 1 - query.T @ score
    dist[:, barrier] = np.inf
    D = np.full((n, m), np.inf)
    S = np.zeros((n, m), int)
    M = np.zeros((n, m), int)
    for j in range(m):
        D[0, j], S[0, j], M[0, j] = dist[0, j], j, j
    for i in range(1, n):
        for j in range(m):
            options = []
            if j >= 1:
                options.append((D[i - 1, j - 1] + dist[i, j], S[i - 1, j - 1],
                                j if i == half else M[i - 1, j - 1]))
            if j >= 2 and not barrier[j - 1]:  # a step may not pass over a barrier
                options.append((D[i - 1, j - 2] + dist[i, j] + penalty, S[i - 1, j - 2],
                                j if i == half else M[i - 1, j - 2]))
            if i >= 2 and j >= 1:
                options.append((D[i - 2, j - 1] + 2 * dist[i, j] + penalty, S[i - 2, j - 1],
                                j if i - 2 < half <= i else M[i - 2, j - 1]))
            if jumps is not None and j in jumps[1]:
                same = np.flatnonzero(jumps[0] == jumps[0][j])
                s = same[np.argmin(D[i - 1, same])]
                options.append((D[i - 1, s] + dist[i, j] + jumps[2], S[i - 1, s],
                                j if i == half else M[i - 1, s]))
            if options:
                D[i, j], S[i, j], M[i, j] = min(options, key=lambda o: o[0])
    return D[-1] / n, S[-1], M[-1]


def _unit_frames(rng, n: int) -> np.ndarray:
    """(12, n) random float32 frames of unit length."""
    x = rng.standard_normal((12, n)).astype(np.float32)
    return x / np.linalg.norm(x, axis=0)


@pytest.mark.parametrize("penalty", [0.0, 0.1])
def test_subsequence_dtw_equals_a_naive_reference(monkeypatch, penalty):
    from scorelink.search import notes

    monkeypatch.setattr(notes, "STEP_PENALTY", penalty)
    rng = np.random.default_rng(0)
    for n in (9, 10):
        query, score = _unit_frames(rng, n), _unit_frames(rng, 40)
        barrier = np.zeros(40, bool)
        barrier[22] = True
        cost, start, middle = subsequence_dtw(query, score, barrier=barrier)
        ref_cost, ref_start, ref_middle = _naive_dtw(query, score, barrier, penalty)
        finite = np.isfinite(ref_cost)
        assert np.array_equal(np.isfinite(cost), finite)
        np.testing.assert_allclose(cost[finite], ref_cost[finite], rtol=1e-5)
        assert np.array_equal(start[finite], ref_start[finite])
        assert np.array_equal(middle[finite], ref_middle[finite])
        assert np.all((start[finite] <= middle[finite])
                      & (middle[finite] <= np.flatnonzero(finite)))
        after = finite & (np.arange(40) > 22)
        assert after.any() and np.all(start[after] > 22)  # no path crosses the barrier


def test_subsequence_dtw_with_jumps_equals_a_naive_reference():
    rng = np.random.default_rng(2)
    groups = np.repeat([0, 1], [22, 18])
    targets = np.array([0, 7, 15, 23, 30])
    for n in (9, 10):
        query, score = _unit_frames(rng, n), _unit_frames(rng, 40)
        barrier = np.zeros(40, bool)
        barrier[[11, 22]] = True
        for penalty in (0.0, 0.5):
            jumps = (groups, targets, penalty)
            cost, start, middle = subsequence_dtw(query, score, barrier=barrier, jumps=jumps)
            ref_cost, ref_start, ref_middle = _naive_dtw(query, score, barrier, 0.0, jumps)
            finite = np.isfinite(ref_cost)
            assert np.array_equal(np.isfinite(cost), finite)
            np.testing.assert_allclose(cost[finite], ref_cost[finite], rtol=1e-5)
            assert np.array_equal(start[finite], ref_start[finite])
            assert np.array_equal(middle[finite], ref_middle[finite])
        plain, _, _ = subsequence_dtw(query, score, barrier=barrier)
        assert np.all(cost <= plain + 1e-6) and np.any(cost < plain - 1e-3)  # jumps were taken


def test_a_clip_across_a_repeat_is_found_when_the_timeline_may_jump():
    """A printed timeline (each system once) against a performance that plays the end of
    system 2 and then the start again: with jumps back to the opening the clip aligns as well as
    a clip inside one system and its middle lands in system 0; without, it aligns badly."""
    rng = np.random.default_rng(3)
    pieces = [_random_piece(rng, 4) for _ in range(3)]
    system_notes = {10 * p + s: notes for p, piece in enumerate(pieces)
                    for s, notes in enumerate(piece)}
    piece_of = {i: f"piece{i // 10}" for i in system_notes}
    first = pieces[1]
    tail = first[2][first[2][:, 0] >= 20.0] - [20.0, 20.0, 0]  # its last 4 s
    head = first[0][first[0][:, 0] < 6.0] + [4.0, 4.0, 0]  # then its first 6 s
    clip = spectrogram(_synth(np.concatenate([tail, head]), seconds=10.0))
    inside = spectrogram(_synth(np.concatenate(first), seconds=10.0))  # its first 10 s
    jumping = NoteMatcher(system_notes, piece_of, jumps=1.0).match(clip)
    plain = NoteMatcher(system_notes, piece_of).match(clip)
    own = NoteMatcher(system_notes, piece_of, jumps=1.0).match(inside)
    assert min(jumping, key=jumping.get) == 10
    assert jumping[10] < own[10] + 0.05 < min(plain.values())


def test_chroma_of_notes_and_of_their_sound():
    notes = np.array([[0.0, 1.0, 60], [1.0, 2.0, 69]])  # C4 for a second, then A4
    score = notes_chroma(notes)
    assert score.shape == (12, 2 * FEATURE_FPS + 1)
    assert set(score[:, 2:8].argmax(axis=0)) == {0} and set(score[:, 12:18].argmax(axis=0)) == {9}
    heard = audio_chroma(spectrogram(_synth(notes)))
    assert set(heard[:, 2:8].argmax(axis=0)) == {0} and set(heard[:, 12:18].argmax(axis=0)) == {9}
    silent = audio_chroma(np.zeros((92, 40), np.float32))
    assert np.all(silent == 0)  # silence neither matches nor mismatches


def test_pitch_profile_of_notes_and_of_their_sound():
    notes = np.array([[0.0, 1.0, 48], [1.0, 2.0, 72]])  # C3 for a second, then C5
    score, heard = notes_features(notes), audio_features(spectrogram(_synth(notes)))
    assert score.shape[0] == heard.shape[0] > 12
    np.testing.assert_allclose(np.linalg.norm(score[:, 2:8], axis=0), 1, rtol=1e-4)
    # the same pitch class, so the chroma rows agree; the pitch rows tell the octaves apart
    heard_low, heard_high = heard[:, 2:8].mean(axis=1), heard[:, 12:18].mean(axis=1)
    score_low, score_high = score[:, 2:8].mean(axis=1), score[:, 12:18].mean(axis=1)
    assert heard_low[:12] @ score_high[:12] > 0.3  # chroma alone: alike
    assert heard_low @ score_low > heard_low @ score_high + 0.2
    assert heard_high @ score_high > heard_high @ score_low + 0.2


def test_chroma_onsets_mark_where_notes_are_struck():
    """A held C, and D struck twice over it: the score's onsets and the sound's rises are in
    the frames where each begins, in its pitch class, and nowhere while a note is only held."""
    notes = np.array([[0.0, 2.0, 60], [1.0, 1.3, 62], [1.5, 2.0, 62]])
    score = notes_onsets(notes, 25)
    assert score.shape == (12, 25)
    for frame, pc in ((0, 0), (10, 2), (15, 2)):
        assert score[:, frame].argmax() == pc
    assert np.all(score[:, 4:9] == 0)  # C held, nothing struck: a flat (zero) frame
    heard = audio_onsets(spectrogram(_synth(notes, seconds=2.5)))
    for frame, pc in ((0, 0), (10, 2), (15, 2)):
        assert heard[:, frame:frame + 2].sum(axis=1).argmax() == pc
    assert heard[2, 10:12].max() > heard[2, 4:9].max() + 0.3  # D rises where it is struck
    assert heard.shape[1] == audio_features(spectrogram(_synth(notes, seconds=2.5))).shape[1]


def test_onsets_tell_a_repeated_chord_from_a_held_one():
    """Read notes have onsets, not durations: a chord struck eight times and the same chord
    held sound the same pitch classes throughout, so chroma and pitch alone cost them alike; a
    matcher with onsets (`onsets=True`, as read notes' matchers are made) finds the one
    whose strikes the clip plays."""
    chord = (60, 64, 67)
    repeated = np.array([[0.25 * k, 0.25 * (k + 1), p] for k in range(8) for p in chord])
    held = np.array([[0.0, 2.0, p] for p in chord])
    systems = {0: repeated, 1: held + [3.0, 3.0, 0]}
    clip = spectrogram(_synth(repeated, seconds=2.0))
    blind = NoteMatcher(systems, {0: "a", 1: "b"}).match(clip, exhaustive=True)
    costs = NoteMatcher(systems, {0: "a", 1: "b"}, onsets=True).match(clip, exhaustive=True)
    assert costs[0] < costs[1] - 0.03
    assert abs(blind[0] - blind[1]) < abs(costs[0] - costs[1]) / 2
    assert (notes_features(repeated, onsets=True).shape[0]
            == audio_features(clip, onsets=True).shape[0] == notes_features(repeated).shape[0] + 12)


def test_music_repeated_an_octave_higher_is_told_apart(monkeypatch):
    """A piece whose second system repeats the first an octave up: a clip of the second finds
    the second; by chroma alone (PITCH_SHARE 0) the two cost the same."""
    import scorelink.search.notes as notes_module

    rng = np.random.default_rng(3)
    first = _random_piece(rng, 1)[0]
    second = first + [8.0, 8.0, 12]
    third = _random_piece(rng, 3)[2]
    piece = {0: first, 1: second, 2: third}
    audio = _synth(np.concatenate(list(piece.values())))
    clip = spectrogram(audio[int(9.5 * SAMPLE_RATE):int(15.5 * SAMPLE_RATE)])  # inside system 2
    costs = NoteMatcher(piece, dict.fromkeys(piece, "p")).match(clip, exhaustive=True)
    assert min(costs, key=costs.get) == 1 and costs[0] > costs[1] + 0.05
    monkeypatch.setattr(notes_module, "PITCH_SHARE", 0.0)
    blind = NoteMatcher(piece, dict.fromkeys(piece, "p")).match(clip, exhaustive=True)
    assert abs(blind[0] - blind[1]) < 0.02


@pytest.mark.parametrize("tempo", [0.5, 1.0, 2.0])
def test_clips_find_their_system_from_half_to_double_tempo(tempo):
    """Three made-up pieces of four systems; 10 s clips cut anywhere, played at half, the
    same and double speed, find the system holding their middle (through the shingles)."""
    rng = np.random.default_rng(1)
    pieces = [_random_piece(rng, 4) for _ in range(3)]
    system_notes = {10 * p + s: notes for p, piece in enumerate(pieces)
                    for s, notes in enumerate(piece)}
    matcher = NoteMatcher(system_notes, {i: f"piece{i // 10}" for i in system_notes})
    for p in range(3):
        notes = np.concatenate(pieces[p])
        audio = _synth(notes, tempo=tempo)
        for start in (1.0, 4.0, 9.0)[:3 if tempo <= 1 else 2]:  # s of the recording; the
            # middles fall 1 s or more inside a system at every tempo
            clip = audio[int(start * SAMPLE_RATE):int((start + 10) * SAMPLE_RATE)]
            middle = (start + 5) * tempo  # in score time
            truth = 10 * p + int(middle // 8.0)
            costs = matcher.match(spectrogram(clip))
            assert min(costs, key=costs.get) == truth, (p, start, costs)


def _index(tmp_path, tiny_scores, tiny_ckpt):
    embedder = Embedder.load(str(tiny_ckpt))
    pending = collect.from_scores([tiny_scores], embedder)
    return Index.write(tmp_path / "idx", pending, model_name=embedder.name,
                       fingerprint=embedder.fingerprint, dim=embedder.dim), embedder


def test_index_keeps_the_engraved_notes_and_reads_older_indexes(tmp_path, tiny_scores,
                                                                  tiny_ckpt):
    from scorelink.data.engrave import engrave
    from scorelink.data.sources import ScoreSource

    index, embedder = _index(tmp_path, tiny_scores, tiny_ckpt)
    assert index.has_notes and index.info["notes"] > 0
    rows = {r["id"]: r for r in index.all_rows("sheet")}
    kept = index.notes()
    for piece, path in (("scores/a", tiny_scores / "a.musicxml"),
                        ("scores/b", tiny_scores / "b.mxl")):
        data, zipped = ScoreSource(piece, str(path), "file").load()
        eng = engrave(data, zipped=zipped)
        mine = np.concatenate([kept[i] for i in sorted(kept) if rows[i]["piece"] == piece])
        order = np.lexsort((eng.performance.pitch, eng.performance.onset))
        assert sorted(mine[:, 2].tolist()) == sorted(eng.performance.pitch.tolist())
        np.testing.assert_allclose(np.sort(mine[:, 0]), eng.performance.onset[order])
    index.close()

    # an index written before notes were kept: no notes table; it loads, queries by image
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "idx", old)
    gen = json.loads((old / "index.json").read_text())["generation"]
    with sqlite3.connect(old / f"meta-{gen}.sqlite") as db:
        db.execute("DROP TABLE notes")
    db.close()
    index = Index(old)
    assert not index.has_notes and index.note_matcher() is None and index.notes() == {}
    hits = query.search_audio(index, embedder, _synth(kept[0]), top=5)
    assert hits and {h["evidence"] for h in hits} == {"image"}
    assert all(h["notes_cost"] is None for h in hits)
    index.close()


def test_search_cli_says_the_notes_decided(tmp_path, tiny_scores, tiny_ckpt, capsys):
    """With an untrained model, the notes still name the piece (b is a transposed to a
    semitone above); --json and the table say which evidence ranked each answer."""
    index, _ = _index(tmp_path, tiny_scores, tiny_ckpt)
    notes = index.notes()
    pieces = {r["id"]: r["piece"] for r in index.all_rows("sheet")}
    index.close()
    for piece in ("scores/a", "scores/b"):
        mine = np.concatenate([n for i, n in notes.items() if pieces[i] == piece])
        for tempo in (0.6, 1.6):
            clip = tmp_path / "clip.wav"
            soundfile.write(clip, _synth(mine, tempo=tempo), SAMPLE_RATE)
            assert main(["search", "--index", str(tmp_path / "idx"), "--checkpoint",
                         str(tiny_ckpt), "--audio", str(clip), "--json"]) == 0
            results = json.loads(capsys.readouterr().out)["results"]
            assert results[0]["piece"] == piece, (piece, tempo, results)
            assert results[0]["evidence"] in ("notes", "both")
            assert results[0]["notes_cost"] < results[1]["notes_cost"]
    assert main(["search", "--index", str(tmp_path / "idx"), "--checkpoint", str(tiny_ckpt),
                 "--audio", str(clip)]) == 0
    table = capsys.readouterr().out
    header, first = table.splitlines()[:2]
    assert "evidence" in header and first.split()[4] in ("notes", "both")


def test_notes_off_ranks_by_the_model_alone(tmp_path, tiny_scores, tiny_ckpt):
    """search_audio(notes=False) on an index that keeps notes: the model's cosine order,
    no notes cost, the same ranking as the image path of the fused evidence."""
    index, embedder = _index(tmp_path, tiny_scores, tiny_ckpt)
    clip = _synth(next(iter(index.notes().values())))
    fused = query.search_audio(index, embedder, clip, top=0)
    model = query.search_audio(index, embedder, clip, top=0, notes=False)
    assert any(h["notes_cost"] is not None for h in fused)
    assert all(h["notes_cost"] is None and h["evidence"] == "image" for h in model)
    similarity = [h["image_score"] for h in model]
    assert similarity == sorted(similarity, reverse=True) and len(model) == index.sheet.ntotal
    evidence = query.audio_evidence(index, embedder, spectrogram(clip))
    assert [h["id"] for h in model] == [h["id"] for h in query.fuse(index, evidence, top=0,
                                                                     paths="image")]
    index.close()


def test_fusion_ranks_systems_with_notes_by_their_notes(tmp_path, tiny_scores, tiny_ckpt):
    """fuse(): systems with notes ranked by their notes cost alone (IMAGE_WEIGHT 0); a weight
    that dwarfs the costs hands the ranking to the model."""
    index, embedder = _index(tmp_path, tiny_scores, tiny_ckpt)
    notes = index.notes()
    evidence = query.audio_evidence(index, embedder, spectrogram(_synth(notes[min(notes)])))

    def ranked(**kw):
        return [h["id"] for h in query.fuse(index, evidence, top=0, **kw)]

    costs = evidence["notes"]
    by_cost = [h["id"] for h in query.fuse(index, evidence, top=0) if h["id"] in costs]
    assert [costs[i] for i in by_cost] == sorted(costs.values())
    assert ranked(weight=1e6) == ranked(paths="image")
    index.close()


def test_ties_go_to_the_system_played_more_often_then_the_earlier(tmp_path):
    """The same music printed twice costs the same: the system the score plays twice (inside
    a repeat) ranks first, then, among systems played alike, the earlier one; a system without
    notes (a scan) ranks by the model, placed as a neutral notes cost."""
    chord = np.array([[0.0, 1.0, 60], [0.0, 1.0, 64], [1.0, 2.0, 67]])
    other = np.array([[0.0, 2.0, 62]])
    passes = {0: [0.0, 4.0], 1: [2.0], 2: [6.0], 3: [8.0]}  # system 0 is played twice
    music = {0: chord, 1: other, 2: chord, 3: chord}
    rows, system_notes = [], []
    for k in range(4):
        rows.append({"piece": "p", "page": 0, "system": k, "top": 0.0, "left": 0.0,
                     "bottom": 1.0, "right": 1.0})
        system_notes.append(np.concatenate([music[k] + [t, t, 0] for t in passes[k]]))
    rows.append({**rows[0], "piece": "scan", "system": 0})
    system_notes.append(None)
    unit = np.eye(8, dtype=np.float32)[:5]
    pending = Pending()
    pending.add_systems(rows, unit, system_notes)
    index = Index.write(tmp_path / "idx", pending, model_name="m", fingerprint="f", dim=8)
    assert index.note_matcher().plays == {0: 2, 1: 1, 2: 1, 3: 1}
    evidence = {"image": {i: 0.5 + 0.1 * i for i in range(5)},
                "notes": {0: 0.1, 1: 0.4, 2: 0.1, 3: 0.1}, "with_notes": {0, 1, 2, 3}}
    assert [h["id"] for h in query.fuse(index, evidence, top=0)] == [0, 2, 3, 4, 1]
    index.close()


def test_the_matcher_aligns_against_the_features_of_the_notes():
    """The matcher keeps chroma and computes the pitch rows for the frames it aligns: they are
    the frames `notes_features` gives each whole piece (gaps between pieces: zeros)."""
    rng = np.random.default_rng(4)
    pieces = [_random_piece(rng, 2, 5.0) for _ in range(3)]
    system_notes = {10 * p + s: notes for p, piece in enumerate(pieces)
                    for s, notes in enumerate(piece)}
    matcher = NoteMatcher(system_notes, {i: f"piece{i // 10}" for i in system_notes})
    whole = [notes_features(np.concatenate(piece)) for piece in pieces]
    total = matcher.chroma.shape[1]
    assert total == sum(w.shape[1] for w in whole) + 3 * FEATURE_FPS
    columns = np.r_[np.arange(0, total, 3), -1, np.arange(5, 40)]
    got = matcher.features(columns)
    expected = np.concatenate([np.concatenate([w, np.zeros((len(w), FEATURE_FPS))], axis=1)
                               for w in whole], axis=1)
    expected = np.where(columns >= 0, expected[:, np.maximum(columns, 0)], 0)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_the_same_music_printed_twice_is_named():
    """A piece whose third system repeats the first note for note: a clip inside either is
    matched to one of them, and the matcher names the other as holding the same music; a clip
    of music heard once names none."""
    first, second, _, fourth = _random_piece(np.random.default_rng(5), 4)
    piece = {0: first, 1: second, 2: first + [16.0, 16.0, 0], 3: fourth}
    matcher = NoteMatcher(piece, dict.fromkeys(piece, "p"))
    audio = _synth(np.concatenate(list(piece.values())))
    for a, holding, twin in ((17.5, 2, 0), (1.5, 0, 2), (9.5, 1, None)):
        spans: dict = {}
        clip = spectrogram(audio[int(a * SAMPLE_RATE):int((a + 5) * SAMPLE_RATE)])
        costs = matcher.match(clip, exhaustive=True, spans=spans)
        best = min(costs, key=costs.get)
        assert best in ({holding, twin} if twin is not None else {holding})
        first_frame, last_frame = spans[best]
        assert last_frame - first_frame == pytest.approx(5 * FEATURE_FPS, abs=8)  # 5 s
        expected = {holding, twin} - {best} if twin is not None else set()
        assert matcher.same_music(first_frame, last_frame, own=best) == expected


def test_the_first_answer_lists_the_systems_holding_its_music(tmp_path):
    """`fuse` names the systems that hold the first answer's music note for note
    ("same_music"), as `search --json` prints them; the model alone names none."""
    rng = np.random.default_rng(6)
    a, b = _random_piece(rng, 2)
    music = {0: a, 1: b - [8.0, 8.0, 0], 2: a}
    rows, system_notes = [], []
    for k in range(3):
        rows.append({"piece": "p", "page": 0, "system": k, "top": 0.0, "left": 0.0,
                     "bottom": 1.0, "right": 1.0})
        system_notes.append(music[k] + [8.0 * k, 8.0 * k, 0])
    pending = Pending()
    pending.add_systems(rows, np.eye(8, dtype=np.float32)[:3], system_notes)
    index = Index.write(tmp_path / "idx", pending, model_name="m", fingerprint="f", dim=8)
    frames = np.flatnonzero(index.note_matcher().labels == 2)
    evidence = {"image": {0: 0.5, 1: 0.6, 2: 0.4}, "notes": {0: 0.2, 1: 0.5, 2: 0.1},
                "with_notes": {0, 1, 2}, "spans": {2: (int(frames[5]), int(frames[55]))}}
    hits = query.fuse(index, evidence, top=0)
    assert hits[0]["id"] == 2
    assert [(t["page"], t["system"]) for t in hits[0]["same_music"]] == [(1, 1)]
    assert "same_music" not in query.fuse(index, evidence, top=0, paths="image")[0]
    index.close()


def test_answers_count_systems_on_their_page(tmp_path):
    """A two-page piece: the answer on page 2 is counted on its page (page 2, system 2), as
    `align` and the page count; `system_in_piece` keeps the piece's count."""
    rows = [{"piece": "p", "page": k // 2, "system": k, "top": 0.0, "left": 0.0,
             "bottom": 1.0, "right": 1.0} for k in range(4)]
    pending = Pending()
    pending.add_systems(rows, np.eye(8, dtype=np.float32)[:4], [None] * 4)
    index = Index.write(tmp_path / "idx", pending, model_name="m", fingerprint="f", dim=8)
    evidence = {"image": {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.9}, "notes": {}, "with_notes": set()}
    hit = query.fuse(index, evidence, top=1)[0]
    assert (hit["id"], hit["page"], hit["system"], hit["system_in_piece"]) == (3, 2, 2, 4)
    assert [s["system"] for s in query.page_systems(index, "p", 2)] == [1, 2]
    index.close()


def test_a_matcher_keeps_as_many_candidate_shingles_as_it_is_set_to():
    """Candidates are the best `hits` shingles: the matcher's own number unless a call asks
    for another; matchers of read notes keep READ_SHINGLE_HITS (more than SHINGLE_HITS: read
    notes describe their shingles less faithfully)."""
    from scorelink.search.notes import SHINGLE_HITS
    from scorelink.search.reading import READ_SHINGLE_HITS, read_matchers

    rng = np.random.default_rng(7)
    pieces = [_random_piece(rng, 4) for _ in range(6)]
    system_notes = {10 * p + s: n for p, piece in enumerate(pieces) for s, n in enumerate(piece)}
    piece_of = {i: f"piece{i // 10}" for i in system_notes}
    query = notes_features(pieces[2][1] - [pieces[2][1][0, 0], pieces[2][1][0, 0], 0])
    few, default = NoteMatcher(system_notes, piece_of, hits=3), NoteMatcher(system_notes, piece_of)
    assert default.hits == SHINGLE_HITS and len(few.candidates(query)) == 3
    assert len(few.candidates(query, hits=5)) == 5
    heads = {i: np.stack([n[:, 0] * 78.0, n[:, 2]], axis=1) for i, n in system_notes.items()}
    assert READ_SHINGLE_HITS > SHINGLE_HITS
    assert all(m.hits == READ_SHINGLE_HITS for m in read_matchers(heads, piece_of))
