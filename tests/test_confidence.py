"""The calibrated confidence of an audio query (search/confidence.py) and "no confident match"."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from conftest import serving

from scorelink.cli import main
from scorelink.constants import FPS, SAMPLE_RATE
from scorelink.data.spectrogram import spectrogram
from scorelink.errors import QueryError
from scorelink.search import confidence
from scorelink.search.embed import Embedder
from scorelink.search.index import Index


def _tones(pitches: list[int], seconds: float = 0.5, partials: int = 4) -> np.ndarray:
    """A melody of piano-like tones (decaying partials), one pitch per `seconds`."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    out = []
    for p in pitches:
        f = 440.0 * 2 ** ((p - 69) / 12)
        out.append(sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, partials + 1))
                   * np.exp(-3 * t))
    return (0.2 * np.concatenate(out)).astype(np.float32)


def test_fit_recovers_a_known_logistic_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * [1.0, 3.0] + [0.5, -1.0]
    truth = np.array([-0.7, 2.0, -0.5])
    p = 1 / (1 + np.exp(-(truth[0] + x @ truth[1:])))
    y = (rng.random(len(x)) < p).astype(float)
    coef = confidence.fit(x, y, l2=0.0)
    np.testing.assert_allclose(coef, truth, atol=0.2)
    # the fitted model's log-likelihood is no worse than the truth's (a maximum)
    def loglik(c):
        z = c[0] + x @ c[1:]
        return np.sum(y * z - np.log1p(np.exp(z)))
    assert loglik(coef) >= loglik(truth) - 1e-6
    with pytest.raises(ValueError, match="both"):
        confidence.fit(x, np.ones(len(x)))


def test_threshold_keeps_the_share_asked_for():
    rng = np.random.default_rng(1)
    for n in (20, 101, 1000):
        conf = rng.random(n)
        thr = confidence.keep_threshold(conf, 0.95)
        assert np.mean(conf >= thr) >= 0.95
        assert np.mean(conf > thr) < 0.95  # the highest such threshold


def test_verdict_without_calibration_says_so(monkeypatch):
    monkeypatch.setattr(confidence, "CALIBRATION", {})
    v = confidence.judge("ab" * 32, {"image": {"best": 0.9, "piece_gap": 0.1,
                                               "agreement": 1.0}, "notes": {}})
    assert v.confidence is None and v.match is None and v.evidence == "image"
    assert "no calibration" in v.message and v.model == "ab" * 8
    assert v.to_dict()["message"] == v.message


def test_verdict_uses_the_models_calibration_and_its_threshold(monkeypatch):
    fp = "0123456789abcdef" + "0" * 48
    n_image, n_notes = len(confidence.FEATURES["image"]), len(confidence.FEATURES["notes"])
    table = {fp[:16]: {"image": (0.0, 10.0, *[0.0] * (n_image - 1), 0.5),
                       "notes": (0.0, -10.0, *[0.0] * (n_notes - 1), 0.5)}}
    monkeypatch.setattr(confidence, "CALIBRATION", table)
    image = {"best": 0.3, "piece_gap": 0.0, "agreement": 0.0, "change": 0.5, "spread": 0.9,
             "attack": 1.5}
    notes = {"cost": 0.1, "piece_gap": 0.0, "change": 0.5, "spread": 0.9, "image_best": 0.3,
             "attack": 1.5, "reverse_gap": 0.2}
    v = confidence.judge(fp, {"image": image, "notes": {}})  # sigmoid(3) > 0.5
    assert v.evidence == "image" and v.match and v.confidence == pytest.approx(0.9526, abs=1e-4)
    v = confidence.judge(fp, {"image": {**image, "best": -0.3}, "notes": {}})
    assert v.match is False and "no confident match" in v.message
    v = confidence.judge(fp, {"image": image, "notes": notes})  # notes take precedence
    assert v.evidence == "notes" and v.match is False  # sigmoid(-1) < 0.5
    # notes read off scans: their own calibration where the model has one, else the image's
    v = confidence.judge(fp, {"image": image, "notes": {}, "read": notes})
    assert v.evidence == "image" and v.match
    from scorelink.models.reader_file import reader_digest

    table[fp[:16]]["read:000000000000"] = table[fp[:16]]["notes"]  # another reader's: not used
    v = confidence.judge(fp, {"image": image, "notes": {}, "read": notes})
    assert v.evidence == "image"
    table[fp[:16]][f"read:{reader_digest()}"] = table[fp[:16]]["notes"]
    v = confidence.judge(fp, {"image": image, "notes": {}, "read": notes})
    assert v.evidence == "read" and v.match is False


def test_the_reverse_gap_tells_the_indexed_order_from_the_same_pitches_in_another():
    """Played as indexed, a melody aligns far better forwards than backwards; the same pitches
    in another order (music that only resembles the indexed piece) align about as badly both
    ways; played backwards, the gap turns negative."""
    from scorelink.search import query
    from scorelink.search.notes import NoteMatcher

    melody = [60, 64, 62, 67, 65, 69, 72, 71, 76, 74, 79, 77, 81, 84, 83, 79, 74, 77]
    notes = np.array([[0.5 * k, 0.5 * (k + 1), p] for k, p in enumerate(melody)], float)
    matcher = NoteMatcher({1: notes}, {1: "a"})

    def gap(pitches):
        features = query.span_features(spectrogram(_tones(pitches)))
        forward = min(query.notes_evidence(matcher, features, [[]]).values())
        return confidence.reverse_cost([matcher], features) - forward

    shuffled = [melody[i] for i in np.random.default_rng(0).permutation(len(melody))]
    assert gap(melody) > 0.4
    assert abs(gap(shuffled)) < 0.1
    assert gap(melody[::-1]) < -0.4
    assert confidence.reverse_cost(
        [], query.span_features(spectrogram(_tones(melody)))) == confidence.NO_COST


def test_an_entry_fitted_before_a_feature_was_added_weighs_the_earlier_ones(monkeypatch):
    fp = "fedcba9876543210" + "0" * 48
    table = {fp[:16]: {"image": (0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.5)}}  # five features
    monkeypatch.setattr(confidence, "CALIBRATION", table)
    assert confidence.feature_names("image", table[fp[:16]]["image"]) == (
        "best", "piece_gap", "agreement", "change", "spread")
    image = {"best": 0.3, "piece_gap": 0.0, "agreement": 0.0, "change": 0.5, "spread": 0.9,
             "attack": -100.0}  # not weighed
    v = confidence.judge(fp, {"image": image, "notes": {}})
    assert v.confidence == pytest.approx(0.9526, abs=1e-4)
    with pytest.raises(ValueError, match="calibration"):
        confidence.feature_names("image", (0.0,) * 12)


def test_a_query_of_a_one_piece_index_is_judged_without_comparing_pieces(
        data_index, tiny_ckpt, chorale_dataset, monkeypatch):
    """With one piece indexed there is no other piece to be far from: the features that compare
    pieces are left out (a gap to "no cost" made speech look certain), and the calibration of
    one-piece queries (evidence + SOLO) judges; a model without one says it has none."""
    from scorelink.search import query
    from scorelink.search.recordings import read_audio

    index, emb = Index(data_index), Embedder.load(tiny_ckpt)
    assert len({r["piece"] for r in index.rows("sheet", range(index.sheet.ntotal))}) == 1
    flac = next(chorale_dataset.rglob("musescore-grand@1.00.flac"))
    spec = spectrogram(read_audio(flac, end=8.0))
    features = confidence.query_features(index, emb, spec, query.audio_evidence(index, emb, spec))
    assert features["notes"] and features["image"]
    for kind in ("notes", "image"):
        assert "piece_gap" not in features[kind] and "agreement" not in features[kind]
        assert confidence.evidence_key(kind, features[kind]) == kind + confidence.SOLO
        assert set(confidence.FEATURES[kind + confidence.SOLO]) <= set(features[kind])
    fp = index.fingerprint
    full = {kind: (50.0, *[0.0] * len(names), 0.5) for kind, names in confidence.FEATURES.items()
            if confidence.SOLO not in kind}
    monkeypatch.setattr(confidence, "CALIBRATION", {fp[:16]: full})
    assert confidence.judge(fp, features).confidence is None  # no one-piece calibration
    solo = {"notes" + confidence.SOLO: (-50.0, *[0.0] * 5, 0.5)}
    monkeypatch.setattr(confidence, "CALIBRATION", {fp[:16]: {**full, **solo}})
    v = confidence.judge(fp, features)
    assert v.evidence == "notes" and v.match is False
    # a query whose candidates hold two pieces is judged as before
    two = {**features["notes"], "piece_gap": 0.1}
    assert confidence.judge(fp, {"image": {}, "notes": two}).match is True


def test_attacks_tell_struck_notes_from_hums_and_voices():
    """Struck notes rise at once and die slowly; a hum never changes; a voice-like tone
    swells and fades alike: only the notes' attack feature is well above 1."""
    t = np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE
    notes = np.zeros_like(t)
    for k, pitch in enumerate([60, 64, 67, 72, 62, 65, 69, 71] * 2):  # each rings on, as struck
        f, on = 440.0 * 2 ** ((pitch - 69) / 12), t >= 0.35 * k
        ring = t[on] - 0.35 * k
        notes[on] += sum(np.sin(2 * np.pi * j * f * ring) / j for j in (1, 2, 3)) * np.exp(
            -2 * ring)
    notes = (0.05 * notes).astype(np.float32)
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)).astype(np.float32) * 0.1
    swell = (np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 2 * t) ** 2).astype(np.float32)
    assert confidence.attack(spectrogram(notes)) > 1.3
    assert confidence.attack(spectrogram(hum)) < 1.0
    assert confidence.attack(spectrogram(0.1 * swell)) < 1.15
    assert confidence.attack(np.zeros((92, 100), np.float32)) == 0.0
    assert confidence.attack(np.zeros((92, 2), np.float32)) == 0.0


def test_input_check_refuses_silence_and_noise_but_not_music():
    rng = np.random.default_rng(2)
    music = _tones([60, 64, 67, 72, 67, 64, 62, 65, 69, 72] * 2)
    confidence.check_clip(music, spectrogram(music))  # no error
    with pytest.raises(QueryError, match="near-silent"):
        confidence.check_clip(music * 1e-4, spectrogram(music * 1e-4))
    noise = (0.1 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    with pytest.raises(QueryError, match="noise"):
        confidence.check_clip(noise, spectrogram(noise))


def test_features_of_tones_and_sub_windows():
    held = _tones([69] * 20, partials=1)
    melody = _tones([60, 64, 67, 72, 62, 65, 69, 71] * 3)
    assert confidence.chroma_change(spectrogram(held)) < 0.2
    assert confidence.chroma_change(spectrogram(melody)) > 0.5
    for n in (10, 100, 200, 400, 2000):
        spans = confidence.sub_spans(n)
        assert 1 <= len(spans) <= confidence.SUB_MAX
        assert all(0 <= a < b <= n for a, b in spans)
        assert len({b - a for a, b in spans}) == 1
        assert spans[0][1] - spans[0][0] == min(int(confidence.SUB_SECONDS * FPS), n // 2)


def _refuse_all(fingerprint: str) -> dict:
    """A calibration that no answer can pass."""
    return {fingerprint[:16]: {kind: (-50.0, *[0.0] * len(names), 0.5)
                               for kind, names in confidence.FEATURES.items()}}


def test_search_answers_with_a_verdict(data_index, tiny_ckpt, chorale_dataset, tmp_path,
                                       monkeypatch, capsys):
    """The CLI (text, JSON, --queries) and confidence.search_audio agree on the verdict; a
    calibration for the model turns an answer under its threshold into "no confident match";
    noise is refused with one line and exit status 2."""
    from scorelink.search.recordings import read_audio

    flac = next(chorale_dataset.rglob("musescore-grand@1.00.flac"))
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, read_audio(flac, end=8.0), SAMPLE_RATE)
    index, emb = Index(data_index), Embedder.load(tiny_ckpt)
    hits, verdict = confidence.search_audio(index, emb, read_audio(clip), top=3)
    assert verdict.confidence is None and "no calibration" in verdict.message  # tiny model
    assert main(["search", "--index", str(data_index), "--audio", str(clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["confidence"]["match"] is None and answer["results"]
    assert main(["search", "--index", str(data_index), "--audio", str(clip)]) == 0
    out, err = capsys.readouterr()  # the table as before; the missing calibration noted aside
    assert out.splitlines()[0].split()[:2] == ["rank", "score"] and "no calibration" in err

    # a calibration that no answer can pass: every query is "no confident match"
    fp = index.fingerprint[:16]
    monkeypatch.setattr(confidence, "CALIBRATION", _refuse_all(fp))
    assert main(["search", "--index", str(data_index), "--audio", str(clip)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("no confident match")
    assert main(["search", "--index", str(data_index), "--audio", str(clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["confidence"]["match"] is False and answer["results"]  # closest still given
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"audio": str(clip)}) + "\n")
    assert main(["search", "--index", str(data_index), "--queries", str(queries)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["confidence"]["match"] is False

    noise = tmp_path / "noise.wav"
    rng = np.random.default_rng(3)
    soundfile.write(noise, 0.1 * rng.standard_normal(8 * SAMPLE_RATE), SAMPLE_RATE)
    assert main(["search", "--index", str(data_index), "--audio", str(noise)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise, not music" in err[0]


def test_web_api_answers_with_the_verdict(data_index, chorale_dataset, monkeypatch):
    import io

    from fastapi.testclient import TestClient

    from scorelink.search.recordings import read_audio
    from scorelink.web.app import create_app

    client = TestClient(create_app(data_index))
    flac = next(chorale_dataset.rglob("musescore-grand@1.00.flac"))
    buf = io.BytesIO()
    soundfile.write(buf, read_audio(flac, end=8.0), SAMPLE_RATE, format="WAV")

    def post(data: bytes):
        return client.post("/api/search/audio", files={"file": ("c.wav", data, "audio/wav")})

    r = post(buf.getvalue())
    assert r.status_code == 200 and r.json()["confidence"]["match"] is None  # tiny model
    fp = Index(data_index).fingerprint[:16]
    monkeypatch.setattr(confidence, "CALIBRATION", _refuse_all(fp))
    answer = post(buf.getvalue()).json()
    assert answer["confidence"]["match"] is False and answer["results"]
    assert answer["confidence"]["message"].startswith("no confident match")
    noise = io.BytesIO()
    rng = np.random.default_rng(4)
    soundfile.write(noise, 0.1 * rng.standard_normal(8 * SAMPLE_RATE), SAMPLE_RATE,
                    format="WAV")
    r = post(noise.getvalue())
    assert r.status_code == 422 and "noise, not music" in r.json()["error"]


def test_page_says_no_confident_match_in_headless_chromium(data_index, chorale_dataset, tmp_path,
                                                          monkeypatch):
    import shutil

    from playwright.sync_api import sync_playwright

    from scorelink.search.recordings import read_audio
    from scorelink.web.app import create_app

    monkeypatch.setattr(confidence, "CALIBRATION", _refuse_all(Index(data_index).fingerprint))
    clip = tmp_path / "clip.wav"
    flac = next(chorale_dataset.rglob("musescore-grand@1.00.flac"))
    soundfile.write(clip, read_audio(flac, end=8.0), SAMPLE_RATE)
    with serving(create_app(data_index)) as url, sync_playwright() as p:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("document.getElementById('info').textContent"
                               ".includes('systems')")
        page.set_input_files("#file", str(clip))
        page.click("#search")
        page.wait_for_selector("#status.error", timeout=30_000)
        assert page.text_content("#status").startswith("no confident match")
        assert page.locator(".hit").count() >= 1  # the closest answers, shown as such
        browser.close()


def test_a_search_computes_only_the_features_its_verdict_weighs(tiny_ckpt, tmp_path, monkeypatch):
    """`search_audio` asks `query_features` for the judged evidence only (the image's
    sub-window agreement embeds the clip again, the reverse gap aligns it again): its verdict
    is the one every feature would give, and a notes query skips the agreement."""
    from scorelink.search import query
    from scorelink.search.index import Pending

    emb = Embedder.load(tiny_ckpt)
    melody = [60, 64, 62, 67, 65, 69, 72, 71, 76, 74, 79, 77, 81, 84, 83, 79, 74, 77]
    rng = np.random.default_rng(3)
    rows, notes = [], []
    for piece in range(3):
        pitches = melody if piece == 0 else list(rng.integers(55, 85, len(melody)))
        for s in range(2):
            rows.append({"piece": f"p{piece}", "page": 0, "system": s, "top": 0.0, "left": 0.0,
                         "bottom": 1.0, "right": 1.0})
            half = pitches[9 * s: 9 * s + 9]
            notes.append(np.array([[0.5 * (9 * s + k), 0.5 * (9 * s + k + 1), p]
                                   for k, p in enumerate(half)], float))
    vectors = rng.standard_normal((len(rows), emb.dim)).astype(np.float32)
    pending = Pending()
    pending.add_systems(rows, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), notes)
    index = Index.write(tmp_path / "idx", pending, model_name="m", fingerprint=emb.fingerprint,
                        dim=emb.dim)
    fp = index.fingerprint
    table = {kind: (0.5, *np.linspace(-1, 1, len(names)), 0.5)
             for kind, names in confidence.FEATURES.items()}
    monkeypatch.setattr(confidence, "CALIBRATION", {fp[:16]: table})
    clip = _tones(melody)
    spec = spectrogram(clip)
    for use_notes, kind in ((True, "notes"), (False, "image")):
        evidence = query.audio_evidence(index, emb, spec, notes=use_notes)
        every = confidence.query_features(index, emb, spec, evidence)
        assert "agreement" in every["image"] and bool(every["notes"]) == use_notes
        _, verdict = confidence.search_audio(index, emb, clip, notes=use_notes)
        assert verdict.evidence == kind and verdict == confidence.judge(fp, every)
    only = confidence.query_features(index, emb, spec, query.audio_evidence(index, emb, spec),
                                     kinds=("notes",))
    assert "agreement" not in only["image"] and "reverse_gap" in only["notes"]
    index.close()
