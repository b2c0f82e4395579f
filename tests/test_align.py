"""Alignment of whole recordings: segment embeddings vs one by one, the image decoder on a known
answer (repeats, a gap), the notes decoder against a naive DP and on a rendition, the align CLI
and its bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile
from conftest import tiny_passage_model as _tiny  # noqa: E402
from PIL import Image

from scorelink.cli import main
from scorelink.constants import AUDIO_SNIPPET_HOP, SAMPLE_RATE
from scorelink.data.store import Dataset
from scorelink.search import align
from scorelink.search.embed import Embedder


def test_segment_embeddings_equal_one_by_one(chorale_dataset):
    emb = Embedder(_tiny(), bf16=False)
    ds = Dataset(chorale_dataset)
    spec = ds.rendition_spec(ds.records(split="test", tempo=1.0)[0]).astype(np.float32)
    segs = align.segment_embeddings(emb, spec, max_steps=12)
    hop = AUDIO_SNIPPET_HOP
    pairs = [(0, 1), (0, 12), (3, 5), (7, 9), (20, 2)]
    slow = emb.audio(spec, [(i * hop, (i + k - 1) * hop + 20) for i, k in pairs])
    np.testing.assert_allclose(np.stack([segs[i, k - 1].numpy() for i, k in pairs]), slow,
                               atol=1e-5)


def test_similarities_with_halves_are_the_halves_cosines(chorale_dataset):
    emb = Embedder(_tiny(), bf16=False)
    ds = Dataset(chorale_dataset)
    records = ds.records(split="test", tempo=1.0)
    spec = ds.rendition_spec(records[0]).astype(np.float32)
    strips = np.stack([ds.strip(r) for r in records[:3]])
    whole, first, second = emb.sheet_with_halves(strips)
    np.testing.assert_allclose(whole, emb.sheet(strips), atol=1e-5)
    sim, k_min = align.similarities(emb, spec, whole, halves=(first, second), max_seconds=9)
    plain, _ = align.similarities(emb, spec, whole, max_seconds=9)
    hop = AUDIO_SNIPPET_HOP

    def span(i, k):  # the spectrogram frames of the k grid steps from step i
        return (i * hop, (i + k - 1) * hop + 20)

    for i, k in [(0, 4), (3, 7), (5, 10)]:
        a, b, c = emb.audio(spec, [span(i, k), span(i, k // 2), span(i + k // 2, k - k // 2)])
        want = ((1 - align.HALVES_SHARE) * whole @ a
                + align.HALVES_SHARE * 0.5 * (first @ b + second @ c))
        np.testing.assert_allclose(sim[i, k - k_min], want, atol=1e-4)
    np.testing.assert_allclose(sim[:, 0], plain[:, 0], atol=1e-6)  # too short to halve


def _known_answer(truth: list[tuple[int, int, int]], n_systems: int, k_min: int, n_k: int):
    """Similarities that peak where a segment is exactly one of the truth's (start, end,
    system): intersection over union with the system's true segments."""
    n = truth[-1][1]
    sim = np.zeros((n, n_k, n_systems), np.float32)
    for i in range(n):
        for c in range(n_k):
            j = i + k_min + c
            for a, b, s in truth:
                if s >= 0:
                    iou = max(0, min(j, b) - max(i, a)) / (max(j, b) - min(i, a))
                    sim[i, c, s] = max(sim[i, c, s], 0.9 * iou)
    return sim


def test_decoder_finds_repeats_skips_and_gaps():
    # systems 0 1 | repeat 0 1 | skip 2 | 3, then a pause (gap), then 4
    truth = [(0, 8, 0), (8, 18, 1), (18, 26, 0), (26, 36, 1), (36, 45, 3), (45, 50, -1),
             (50, 59, 4)]
    sim = _known_answer(truth, 5, 2, 14)
    path = align.decode_tempo(sim, 2, jump_penalty=1.0, gap_level=0.15)
    assert [(a, b, s) for a, b, s in path if s >= 0] == [t for t in truth if t[2] >= 0]
    assert any(s == -1 and a >= 45 and b <= 50 for a, b, s in path)
    # with an unaffordable jump, the decoder must go on in reading order instead
    path = align.decode_tempo(sim, 2, jump_penalty=1e6, gap_level=0.15)
    played = [s for _, _, s in path if s >= 0]
    assert played == sorted(played)


def test_decoder_repeats_one_system_cheaply_and_charges_an_early_end():
    # system 0 twice in a row (a written repeat of one line), then 1 and 2
    truth = [(0, 8, 0), (8, 16, 0), (16, 24, 1), (24, 32, 2)]
    sim = _known_answer(truth, 3, 2, 14)
    path, _ = align.decode(sim, 2, jump_penalty=1e6)
    assert [t for t in path if t[2] >= 0] == truth  # the repeat, though jumps are unaffordable
    path, _ = align.decode(sim, 2, jump_penalty=1e6, repeat_penalty=1e6)
    assert [s for _, _, s in path if s >= 0] == [0, 1, 2]  # without it: one long pass
    # a recording that stops after system 1 of 3 pays one jump for ending early
    truth = [(0, 8, 0), (8, 16, 1)]
    sim = _known_answer(truth, 3, 2, 14)
    path, total = align.decode(sim, 2, jump_penalty=1.0)
    assert [t for t in path if t[2] >= 0] == truth
    assert total == pytest.approx(16 * 0.9 - 1.0, abs=1e-4)


def test_jump_penalty_grows_with_the_systems_length():
    """The default jump costs JUMP_SHARE per step of a system's length (the score played once
    in the recording): on long systems a look-alike elsewhere must beat going on by more."""
    # 4 systems of 20 steps; in the third one's time, system 0 looks a little better (+0.1)
    truth = [(20 * s, 20 * s + 20, s) for s in range(4)]
    sim = _known_answer(truth, 4, 2, 30)
    sim[40:60, :, 0] = np.where(sim[40:60, :, 2] > 0, sim[40:60, :, 2] + 0.1, 0)
    fixed = align.decode_tempo(sim, 2, jump_penalty=align.MIN_JUMP)
    assert 0 in [s for a, _, s in fixed if a >= 40]  # a cheap jump takes the look-alike
    assert [t for t in align.decode_tempo(sim, 2) if t[2] >= 0] == truth


def test_decoder_follows_a_change_of_tempo():
    """A slow introduction (two systems of 16 steps) before a fast movement (six of 4 steps),
    with similarities that cannot tell one pass of a system from several: at one tempo the
    decoder would cut the slow systems into repeats; following the tempo it plays each once."""
    truth = [(0, 16, 0), (16, 32, 1)] + [(32 + 4 * s, 36 + 4 * s, 2 + s) for s in range(6)]
    sim = np.zeros((56, 20, 8), np.float32)
    for i in range(56):
        for c in range(20):
            for a, b, s in truth:  # any segment inside a system's span is as good as it
                if a <= i and i + 2 + c <= b:
                    sim[i, c, s] = 0.9
    assert [t for t in align.decode_tempo(sim, 2) if t[2] >= 0] == truth
    one_tempo = align.decode_tempo(sim, 2, tempo_change=1e6)
    assert len([s for _, _, s in one_tempo if s in (0, 1)]) > 2


def test_long_segments_near_a_hub_system_do_not_take_over(monkeypatch):
    """Ten systems of 8 steps each; system 9 is a "hub": every segment of 40 steps or more is
    closer to it (0.93) than the right segments are to theirs (0.9), as long summaries came out
    on a 10-minute medley. The tempo range (what plays the score once, TEMPO_RANGE either
    way) keeps the decoder on the right systems; without it the hub takes the recording."""
    truth = [(8 * s, 8 * s + 8, s) for s in range(10)]
    sim = _known_answer(truth, 11, 2, 50)
    sim[:, 38:, 10] = 0.93  # k = 2 + 38 = 40 steps and longer
    path = align.decode_tempo(sim, 2, jump_penalty=0.5, gap_level=0.15)
    assert [t for t in path if t[2] >= 0] == truth
    monkeypatch.setattr(align, "TEMPO_RANGE", 100.0)
    path = align.decode_tempo(sim, 2, jump_penalty=0.5, gap_level=0.15)
    assert {s for _, _, s in path if s >= 0} == {10}


def _piece(chorale_dataset):
    ds = Dataset(chorale_dataset)
    r = ds.records(split="test", tempo=1.0)[0]
    folder = chorale_dataset / "pieces" / r["piece"]
    n_systems = len({x["system"] for x in ds.records(piece=r["piece"], tempo=1.0)})
    return folder / "pages", folder / f"{r['rendition']}.flac", n_systems


def test_align_cli(chorale_dataset, tiny_ckpt, tmp_path, capsys):
    pages, flac, n_systems = _piece(chorale_dataset)
    out, plot = tmp_path / "a.json", tmp_path / "a.png"
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out", str(out),
                 "--plot", str(plot), "--checkpoint", str(tiny_ckpt)]) == 0
    result = json.loads(out.read_text())
    assert result["recording"] == str(flac) and result["systems"]
    duration = soundfile.info(str(flac)).duration
    previous_end = 0.0
    for s in result["systems"]:
        assert set(s) == {"page", "system", "start", "end", "confidence", "evidence"}
        assert s["evidence"] == "image+read"  # page images: no notes but those read off them
        assert s["page"] >= 1 and 1 <= s["system"] <= n_systems  # 1-based, as people count
        assert previous_end - 1e-6 <= s["start"] < s["end"] <= duration + 1e-6
        assert 0 <= s["confidence"] <= 1
        previous_end = s["end"]
    assert Image.open(plot).size[0] > 100
    assert len(capsys.readouterr().out.splitlines()) == len(result["systems"]) + 1
    table = tmp_path / "a.csv"
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out", str(table),
                 "--checkpoint", str(tiny_ckpt)]) == 0
    def numbers(r):
        return {k: v if k == "evidence" else float(v) for k, v in r.items()}

    with open(table) as f:
        assert [numbers(r) for r in csv.DictReader(f)] == [numbers(r) for r in result["systems"]]


def test_align_bad_input(chorale_dataset, tiny_ckpt, tmp_path, capsys):
    pages, flac, n_systems = _piece(chorale_dataset)
    ckpt = ["--checkpoint", str(tiny_ckpt)]
    blank = tmp_path / "blank.png"
    Image.new("L", (835, 1181), 255).save(blank)
    short = tmp_path / "short.wav"
    audio, sr = soundfile.read(str(flac))
    soundfile.write(str(short), audio[: int(0.5 * n_systems * sr)], sr)
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(20 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    for score, recording, word in ((blank, flac, "staves"), (pages, short, "too short"),
                                   (pages, silent, "silent"),
                                   (pages, tmp_path / "none.wav", "does not exist")):
        capsys.readouterr()
        assert main(["align", "--score", str(score), "--recording", str(recording), *ckpt]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, err
    assert main(["align", "--score", str(pages), "--recording", str(flac), "--out",
                 str(tmp_path / "x.txt"), *ckpt]) == 2


# --- measures ----------------------------------------------------------------------------------

_STEPS = ("C", "C", "D", "D", "E", "F", "F", "G", "G", "A", "A", "B")


def _musicxml_note(midi: int, duration: int, kind: str) -> str:
    alter = "<alter>1</alter>" if _STEPS[midi % 12] == _STEPS[(midi - 1) % 12] else ""
    return (f"<note><pitch><step>{_STEPS[midi % 12]}</step>{alter}<octave>{midi // 12 - 1}"
            f"</octave></pitch><duration>{duration}</duration><type>{kind}</type></note>")


def measured_score(measures: int = 12, repeat_end: int = 4) -> str:
    """A two-staff MusicXML score: in measure k, an arpeggio on a root a fourth above measure
    k - 1's (quarters over two halves); the first `repeat_end` measures repeated."""
    parts = []
    for staff, clef in ((1, "<sign>G</sign><line>2</line>"), (2, "<sign>F</sign><line>4</line>")):
        body = []
        for k in range(measures):
            root = 60 + (k * 5) % 12
            head = (f"<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4"
                    f"</beat-type></time><clef>{clef}</clef></attributes>" if k == 0 else "")
            notes = ([_musicxml_note(root + d, 1, "quarter") for d in (0, 4, 7, 12)]
                     if staff == 1 else
                     [_musicxml_note(root - d, 2, "half") for d in (12, 5)])
            barline = ('<barline location="right"><bar-style>light-heavy</bar-style>'
                       '<repeat direction="backward"/></barline>' if k + 1 == repeat_end else "")
            body.append(f'<measure number="{k + 1}">{head}{"".join(notes)}{barline}</measure>')
        parts.append(f'<part id="P{staff}">{"".join(body)}</part>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="4.0"><part-list>'
            '<score-part id="P1"><part-name/></score-part><score-part id="P2"><part-name/>'
            f'</score-part></part-list>{"".join(parts)}</score-partwise>')


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The measured score as a file, its systems, and a rendition at 0.8 x its tempo."""
    from scorelink.data.spectrogram import spectrogram
    from scorelink.data.synthesize import TEST_SOUNDFONT, render
    from scorelink.search.collect import score_systems

    folder = tmp_path_factory.mktemp("measured")
    score = folder / "score.musicxml"
    score.write_text(measured_score())
    systems = score_systems(score)
    notes = np.concatenate([s["notes"] for s in systems])
    audio = render(notes[:, 0], notes[:, 1], notes[:, 2].astype(int), soundfont=TEST_SOUNDFONT,
                   tempo=0.8)
    flac = folder / "take.flac"
    soundfile.write(str(flac), audio, SAMPLE_RATE)
    return score, flac, systems, spectrogram(audio)


def test_engraving_times_measures(measured):
    _, _, systems, _ = measured
    assert len(systems) >= 2
    played = sorted((m["start"], m["end"], m["label"], m["index"], k)
                    for k, s in enumerate(systems) for m in s["measures"])
    # repeats unfolded: 1-4 twice, then 5-12; 4/4 at Verovio's default 120 bpm: 2 s a measure
    assert [p[2] for p in played] == [str(k) for k in [1, 2, 3, 4, 1, 2, 3, 4, *range(5, 13)]]
    assert [p[3] + 1 for p in played] == [int(p[2]) for p in played]
    np.testing.assert_allclose([p[0] for p in played], np.arange(16) * 2.0)
    np.testing.assert_allclose([p[1] for p in played], np.arange(1, 17) * 2.0)
    assert [p[4] for p in played] == sorted(p[4] for p in played)  # systems in reading order
    assert all(len(s["measures"]) for s in systems)


def test_refine_measure_times(measured):
    """Measure starts from system segments up to a grid step off (as the decoder gives them),
    against the rendition's truth (score time / 0.8); a repeat given as one segment or two."""
    from scorelink.search.measures import refine

    _, _, systems, spec = measured
    truth = sorted((m["start"] / 0.8, m["label"]) for s in systems for m in s["measures"])
    split = truth[[label for _, label in truth].index(systems[1]["measures"][0]["label"])][0]
    end = truth[-1][0] + 2.5
    for segments in ([align.Segment(0, 0.9, split - 0.9, 0.5, 0.5),
                      align.Segment(1, split - 0.9, end, 0.5, 0.5)],
                     [align.Segment(0, 0.0, 9.0, 0.5, 0.5),
                      align.Segment(0, 9.0, split + 0.9, 0.5, 0.5),
                      align.Segment(-1, split + 0.9, split + 1.8, 0.0, 0.0),
                      align.Segment(1, split + 1.8, end, 0.5, 0.5)]):
        found = refine(spec, align.Alignment(segments, np.zeros((1, 1))), systems)
        assert [m.label for m in found] == [label for _, label in truth]
        assert np.abs([m.start - t for m, (t, _) in zip(found, truth, strict=True)]).max() <= 0.25
        assert all(a.end <= b.start + 1e-9 for a, b in zip(found, found[1:], strict=False))
    # a decoder that gave the whole recording to the second system: its tempo from the system
    # segments is wrong (the whole recording for one system); the whole score's is right
    found = refine(spec, align.Alignment([align.Segment(1, 0.0, end, 0.5, 0.5)],
                                         np.zeros((1, 1))), systems)
    second = [(t, label) for t, label in truth if t >= split - 1e-6]
    assert [m.label for m in found] == [label for _, label in second]
    assert np.abs([m.start - t for m, (t, _) in zip(found, second, strict=True)]).max() <= 0.25


def test_dtw_path_against_the_cost_only_dtw(monkeypatch):
    from scorelink.search import notes
    from scorelink.search.measures import dtw_path
    from scorelink.search.notes import _unit, subsequence_dtw

    monkeypatch.setattr(notes, "STEP_PENALTY", 0.0)  # measures' DTW charges no tempo change

    rng = np.random.default_rng(0)
    for n, m in ((5, 30), (20, 25), (12, 12), (30, 16)):
        query, target = _unit(rng.random((12, n))), _unit(rng.random((12, m)))
        cost, path = dtw_path(query, target)
        costs, _, _ = subsequence_dtw(query, target)
        np.testing.assert_allclose(cost, costs.min(), rtol=1e-5)
        steps = {tuple(d) for d in np.diff(path, axis=0)}
        assert steps <= {(1, 1), (1, 2), (2, 1)} and path[0, 0] == 0 and path[-1, 0] == n - 1
        dist = 1 - query.T @ target  # the path's cost: a (2, 1) step counts its cell twice
        weight = np.r_[1, [2 if d[0] == 2 else 1 for d in np.diff(path, axis=0)]]
        np.testing.assert_allclose((weight * dist[path[:, 0], path[:, 1]]).sum() / n, cost,
                                   rtol=1e-5)
    assert dtw_path(query[:, :10], target[:, :4]) == (float("inf"), None)


def test_align_cli_measures(measured, tiny_ckpt, tmp_path):
    score, flac, systems, _ = measured
    out, table = tmp_path / "a.json", tmp_path / "m.csv"
    assert main(["align", "--score", str(score), "--recording", str(flac), "--out", str(out),
                 "--measures", str(table), "--checkpoint", str(tiny_ckpt)]) == 0
    result = json.loads(out.read_text())
    assert result["systems"] and result["measures"]
    # the notes decided: the systems as played (1-4 twice on the first system), to 0.25 s
    truth = [(1, 1, 0.0), (1, 1, 8 / 0.8), (1, 2, 20 / 0.8)]  # 2 s a measure, 0.8 x
    assert [(s["page"], s["system"]) for s in result["systems"]] == [t[:2] for t in truth]
    assert all(s["evidence"] == "notes" for s in result["systems"])
    assert np.abs([s["start"] - t[2] for s, t in zip(result["systems"], truth,
                                                       strict=True)]).max() <= 0.25
    duration = soundfile.info(str(flac)).duration
    for m in result["measures"]:
        assert set(m) == {"page", "system", "measure", "index", "start", "end"}
        assert m["page"] == 1 and 1 <= m["system"] <= len(systems)
        assert m["measure"] == str(m["index"]) and 1 <= m["index"] <= 12
        assert 0 <= m["start"] <= m["end"] <= duration + 1e-6
    with open(table) as f:
        assert [{k: str(v) for k, v in r.items()} for r in result["measures"]] == \
            list(csv.DictReader(f))


def test_align_measures_need_notes(chorale_dataset, tiny_ckpt, tmp_path, capsys):
    pages, flac, _ = _piece(chorale_dataset)  # page images: no notes
    capsys.readouterr()
    lily = tmp_path / "piece.ly"  # LilyPond's engraving gives notes but no measures
    lily.write_text("\\relative c' { c4 d e f }\n")
    for score in (pages, lily):  # refused before any work
        assert main(["align", "--score", str(score), "--recording", str(flac), "--measures",
                     str(tmp_path / "m.csv"), "--checkpoint", str(tiny_ckpt)]) == 2
        assert "--measures needs a score file engraved with Verovio" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()


def test_align_cli_image_only(measured, tiny_ckpt, tmp_path):
    score, flac, _, _ = measured
    out = tmp_path / "a.json"
    assert main(["align", "--score", str(score), "--recording", str(flac), "--out", str(out),
                 "--image-only", "--checkpoint", str(tiny_ckpt)]) == 0
    result = json.loads(out.read_text())
    assert result["systems"] and all(s["evidence"] == "image" for s in result["systems"])


def test_align_notes_bad_input(measured, tiny_ckpt, tmp_path, capsys):
    """A score with notes: a silent recording, noise, a recording far too short, each one line
    and status 2."""
    score, flac, systems, _ = measured
    rng = np.random.default_rng(0)
    silent, noise, short = tmp_path / "silent.wav", tmp_path / "noise.wav", tmp_path / "s.wav"
    soundfile.write(str(silent), np.zeros(20 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    soundfile.write(str(noise), 0.1 * rng.standard_normal(40 * SAMPLE_RATE), SAMPLE_RATE)
    soundfile.write(str(short), soundfile.read(str(flac))[0][: SAMPLE_RATE], SAMPLE_RATE)
    for recording, word in ((silent, "silent"), (noise, "does not sound like"),
                            (short, "too short")):
        capsys.readouterr()
        assert main(["align", "--score", str(score), "--recording", str(recording),
                     "--checkpoint", str(tiny_ckpt)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, err


# --- the notes decoder ---------------------------------------------------------------------------


def _naive_total(query, score, starts, ends, *, jump, hold, gap):
    """follow.decode's total cost, one cell at a time (the definition, no vectorising)."""
    n, m = query.shape[1], score.shape[1]
    d = 1.0 - query.T @ score
    inf = float("inf")
    big = np.full((n, m), inf)
    gaps = np.full(n, inf)  # a gap after music, at row i
    for i in range(n):
        lead_before = i * gap  # the lead gap over rows 0 .. i - 1
        for j in range(m):
            def at(a, b):
                return big[a, b] if a >= 0 and b >= 0 else inf
            options = [at(i - 1, j - 1), at(i - 1, j - 2), at(i - 1, j) + hold,
                       at(i - 1, j - 3)]
            if i >= 2:  # (2, 1), (3, 1): the rows passed over on column j, at their cost
                options.append(at(i - 2, j - 1) + d[i - 1, j])
            if i >= 3:
                options.append(at(i - 3, j - 1) + d[i - 1, j] + d[i - 2, j])
            if j in starts:
                options.append(min(at(i - 1, e - 1) for e in ends) + jump)
                options.append((gaps[i - 1] if i else inf) + jump)
                options.append(lead_before + (0.0 if j == starts[0] else jump))
            big[i, j] = d[i, j] + min(options)
        if i:
            gaps[i] = min(gaps[i - 1], big[i - 1].min()) + gap
    return min(big[n - 1].min(), gaps[n - 1], n * gap)


def test_notes_decoder_against_naive_dp():
    from scorelink.search import follow
    from scorelink.search.notes import _unit

    rng = np.random.default_rng(1)
    for n, m in ((30, 24), (18, 40), (45, 20)):
        query, score = _unit(rng.random((12, n))), _unit(rng.random((12, m)))
        query[:, :3] = 0  # silence: frames that match nothing
        starts = np.array([0, 5, 11, 17])
        ends = np.r_[starts[1:], m]
        for jump in (0.5, 3.0):
            _, _, total = follow.decode(query, score, starts, ends, jump_penalty=jump,
                                        hold_penalty=0.3, gap_cost=0.8)
            want = _naive_total(query, score, starts, ends, jump=jump, hold=0.3, gap=0.8)
            np.testing.assert_allclose(total, want, rtol=1e-4)


def test_notes_decoder_follows_jumps_and_gaps():
    """Units A B C D; played: a second of silence, A B A (a repeat), D (C skipped), silence,
    B. The path must give each recording frame its score frame, the gaps -1."""
    from scorelink.search import follow
    from scorelink.search.notes import _unit

    rng = np.random.default_rng(2)
    score = _unit(rng.random((12, 40)))
    starts = np.array([0, 10, 20, 30])
    ends = np.r_[starts[1:], 40]
    silence = np.zeros((12, 10), np.float32)
    played = [None, 0, 1, 0, 3, None, 1]
    query = np.concatenate([silence if u is None else score[:, starts[u]:ends[u]]
                            for u in played], axis=1)
    frame, entered, _ = follow.decode(query, score, starts, ends, jump_penalty=3.0)
    want = np.concatenate([np.full(10, -1) if u is None else np.arange(starts[u], ends[u])
                           for u in played])
    np.testing.assert_array_equal(frame, want)
    assert entered[[10, 30, 40, 60]].all()  # entries: from the lead, the repeat, the skip, ...


def test_align_notes_on_a_rendition(measured):
    """The measured score at 0.8 x its tempo: systems and measures as played, to 0.25 s."""
    from scorelink.search import follow

    _, _, systems, spec = measured
    found = follow.align_notes(spec, systems)
    assert found.evidence == "notes"
    assert [(s.system, round(s.start / 0.25)) for s in found.systems] == \
        [(0, 0), (0, round(8 / 0.8 / 0.25)), (1, round(20 / 0.8 / 0.25))]
    truth = sorted((m["start"] / 0.8, m["label"]) for s in systems for m in s["measures"])
    assert [m.label for m in found.measures] == [label for _, label in truth]
    assert np.abs([m.start - t for m, (t, _) in zip(found.measures, truth,
                                                      strict=True)]).max() <= 0.25


def test_steps_off_the_diagonal_pay(monkeypatch):
    """With a STEP_PENALTY the search's DTW charges it per step off the diagonal: the score's
    own frames cost nothing, the same frames played at half speed (each held twice) cost the
    penalty of the (2, 1) steps, spread over the clip's frames."""
    from scorelink.search import notes
    from scorelink.search.notes import _unit, subsequence_dtw

    penalty = 0.1
    monkeypatch.setattr(notes, "STEP_PENALTY", penalty)
    rng = np.random.default_rng(1)
    score = _unit(rng.random((12, 40)))
    same = score[:, 10:30]
    costs, starts, _ = subsequence_dtw(same, score)
    assert costs.min() == pytest.approx(0, abs=1e-5) and starts[costs.argmin()] == 10
    slow = np.repeat(score[:, 10:20], 2, axis=1)[:, :19]  # score frames 10-19, each held twice
    costs, _, _ = subsequence_dtw(slow, score)
    # the path lands on the clip's even frames, score frames 10, 11, ..., 19: 9 (2, 1) steps
    assert costs.min() == pytest.approx(9 * penalty / 19, abs=1e-5)


def test_read_notes_sharpen_late_image_starts(measured):
    """Image segments that start 1 s late (the decoder's grid) move back to where the systems'
    notes begin: 0, 10 and 25 s at 0.8 x the tempo (the repeat included), to 0.3 s; the
    segment before ends where the next begins."""
    from scorelink.search.reading import refine_starts

    _, _, systems, spec = measured
    first_pass = [(0.0, 8.0), (20.0, 32.0)]  # score seconds: each system's notes played once
    notes = []
    for s, (a, b) in zip(systems, first_pass, strict=True):
        n = s["notes"][(s["notes"][:, 0] >= a) & (s["notes"][:, 0] < b)]
        notes.append(n - [a, a, 0])  # a timeline of their own, as a reader gives
    late = [align.Segment(0, 1.0, 11.0, 0.5, 0.5), align.Segment(0, 11.0, 26.0, 0.5, 0.5),
            align.Segment(1, 26.0, 40.0, 0.5, 0.5)]
    found = refine_starts(spec, late, notes)
    assert [s.system for s in found] == [0, 0, 1]
    np.testing.assert_allclose([s.start for s in found], [0.0, 10.0, 25.0], atol=0.3)
    assert [a.end for a in found[:-1]] == [b.start for b in found[1:]]


def _played(systems: list[np.ndarray], order: list[int]) -> tuple[np.ndarray, list[float]]:
    """The spectrogram of systems' notes (each on a timeline of its own, as a reader gives)
    played one after another in `order`, and where each pass starts (s)."""
    from test_notes import _synth

    from scorelink.data.spectrogram import spectrogram

    parts, starts, t = [], [], 0.0
    for k in order:
        n = systems[k]
        length = float(n[:, 1].max())
        parts.append(_synth(n, seconds=length))
        starts.append(t)
        t += length
    return spectrogram(np.concatenate(parts)), starts


def test_read_similarities_prefer_the_system_whose_notes_sound():
    """A segment over the sound of system 1's notes fits system 1's read notes best, at every
    length near its own; each segment's scores are centred on their mean over the systems."""
    from test_notes import _random_piece

    rng = np.random.default_rng(3)
    systems = [n - [n[0, 0], n[0, 0], 0] for n in _random_piece(rng, 3)]
    spec, _ = _played(systems, [1])
    k_min, n_k = 2, 10
    sim = align.read_similarities(spec, systems, 4, n_k, k_min)
    assert sim.shape == (4, n_k, 3)
    np.testing.assert_allclose(sim.mean(axis=2), 0.0, atol=1e-6)
    steps = int(8.0 / align.STEP_SECONDS)  # the 8 s the system lasts, in grid steps
    for k in range(steps - 2, steps + 1):
        assert sim[0, k - k_min].argmax() == 1


def test_read_notes_tell_apart_systems_the_image_cannot(monkeypatch):
    """With every system alike to the image (a constant similarity), the read notes decide
    which system sounds: a recording that plays system 0 twice (a written repeat), then systems
    1 and 2, is decoded so, each pass found within a grid step; without them the decoder takes
    the free way on, systems 0, 1, 2, once each."""
    from test_notes import _random_piece

    rng = np.random.default_rng(5)
    systems = [n - [n[0, 0], n[0, 0], 0] for n in _random_piece(rng, 3)]
    spec, starts = _played(systems, [0, 0, 1, 2])

    def alike(embedder, spec, sheet, **kw):
        k_min = max(1, round(align.MIN_SECONDS / align.STEP_SECONDS))
        k_max = round(align.MAX_SECONDS / align.STEP_SECONDS)
        steps = -(-spec.shape[1] // AUDIO_SNIPPET_HOP)
        return np.full((steps, k_max - k_min + 1, len(sheet)), 0.5, np.float32), k_min

    monkeypatch.setattr(align, "similarities", alike)
    sheet = np.zeros((3, 4), np.float32)
    found = align.align(spec, sheet, None, read=systems)
    assert found.evidence == "image+read"
    assert [s.system for s in found.systems] == [0, 0, 1, 2]
    np.testing.assert_allclose([s.start for s in found.systems], starts,
                               atol=align.STEP_SECONDS + 1e-6)
    blind = align.align(spec, sheet, None)
    assert blind.evidence == "image"
    assert [s.system for s in blind.systems] == [0, 1, 2]
