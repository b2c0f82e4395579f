"""Following a recording along an indexed score: the API (an alignment as `align` makes it,
cached, refusals) and the page in headless Chromium (highlight, page turns, seeking)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import serving
from fastapi.testclient import TestClient

from scorelink.search.index import Index, Pending

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def embedder():
    from scorelink.search.embed import Embedder

    return Embedder.load(None)  # the shipped model: the alignment must be real to turn pages


@pytest.fixture(scope="module")
def two_pages(tmp_path_factory, chorale_dataset, embedder) -> dict:
    """An index of one chorale whose page is cut in two (its last system alone on page 2),
    with its rendition as an indexed recording ("take"), made with the shipped model."""
    from scorelink.data.store import Dataset

    ds = Dataset(chorale_dataset)
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    piece = flac.parent.name
    records = ds.records(piece=piece, rendition="musescore-grand@1.00")
    first = {}
    for r in records:
        first.setdefault(r["system"], r)
    systems = [first[k] for k in sorted(first)]
    assert len(systems) >= 2 and all(r["page"] == 0 for r in systems)
    page = ds.page(piece, 0)
    cut = int((systems[-2]["box"][2] + systems[-1]["box"][0]) / 2)
    upper = page.copy()
    upper[cut:] = 255
    lower = np.full_like(page, 255)
    lower[: page.shape[0] - cut] = page[cut:]
    rows, layout = [], []
    for k, r in enumerate(systems):
        p = int(k == len(systems) - 1)
        top, left, bottom, right = r["box"]
        shift = cut * p
        rows.append({"piece": "chorale", "page": p, "system": k, "top": top - shift,
                     "left": left, "bottom": bottom - shift, "right": right,
                     "page_image": f"pages/chorale/page-{p + 1:03d}.png"})
        layout.append((p + 1, 1 if p else k + 1))
    strips = np.stack([ds.strip(r) for r in systems])
    pending = Pending()
    whole, *halves = embedder.sheet_with_halves(strips)
    from scorelink.models.reader import load_reader, read_strips

    heads = read_strips(load_reader(), list(strips))  # as `index --scores` reads page images
    pending.add_systems(rows, whole, halves=tuple(halves), heads=heads)
    pending.pages = {"pages/chorale/page-001.png": upper, "pages/chorale/page-002.png": lower}
    spec = ds.rendition_spec(records[0])
    pending.add_windows([{"recording": "take", "start": 0.0, "end": 10.8,
                          "audio_path": str(flac.resolve())}],
                        embedder.audio(np.asarray(spec), [(0, 216)]))
    root = tmp_path_factory.mktemp("follow") / "idx"
    Index.write(root, pending, model_name="shipped:rnn-piano.pt",
                fingerprint=embedder.fingerprint, dim=embedder.dim)
    return {"index": root, "flac": flac, "strips": strips, "layout": layout, "heads": heads}


def test_follow_uses_the_notes_the_index_keeps(two_pages, chorale_dataset, embedder, tmp_path):
    """The same chorale indexed with its notes: the page follows by the notes, and the systems
    start where the rendition plays them."""
    from scorelink.data.store import Dataset
    from scorelink.search.collect import _dataset_notes
    from scorelink.search.recordings import read_audio
    from scorelink.web import follow

    ds = Dataset(chorale_dataset)
    piece = two_pages["flac"].parent.name
    records = ds.records(piece=piece, rendition="musescore-grand@1.00")
    notes = _dataset_notes(ds, records)
    old = Index(two_pages["index"])
    rows = old.all_rows("sheet")
    pending = Pending()
    pending.add_systems([{k: r[k] for k in ("piece", "page", "system", "top", "left", "bottom",
                                            "right", "page_image")} for r in rows],
                        embedder.sheet(two_pages["strips"]),
                        [notes[(piece, r["system"])] for r in rows])
    Index.write(tmp_path / "idx", pending, model_name="shipped:rnn-piano.pt",
                fingerprint=embedder.fingerprint, dim=embedder.dim)
    answer = follow.follow(Index(tmp_path / "idx"), embedder, "chorale",
                           read_audio(two_pages["flac"]))
    assert answer["systems"] and all(s["evidence"] == "notes" for s in answer["systems"])
    layout = two_pages["layout"]
    found: dict = {}
    for s in answer["systems"]:
        found.setdefault((s["page"], s["system"]), s["start"])
    for r in records:  # every pass's start, to half a second (the first pass of each system)
        if r["occurrence"] == 0:
            assert abs(found[layout[r["system"]]] - r["start"]) <= 0.5


@pytest.fixture(scope="module")
def app(two_pages):
    from scorelink.web.app import create_app

    return create_app(two_pages["index"])


def test_follow_answers_as_align_does_and_caches(app, two_pages, embedder):
    from scorelink.data.spectrogram import spectrogram
    from scorelink.search import align
    from scorelink.search.recordings import read_audio

    client = TestClient(app)
    lib = client.get("/api/library").json()
    assert lib["scores"] == [{"piece": "chorale", "pages": 2,
                              "systems": len(two_pages["layout"])}]
    assert [r["recording"] for r in lib["recordings"]] == ["take"]
    whole = client.get(lib["recordings"][0]["audio_url"])
    assert whole.content == two_pages["flac"].read_bytes()
    part = client.get("/recordings/take", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]

    answer = client.post("/api/follow", data={"piece": "chorale", "recording": "take"}).json()
    # the same alignment `align` makes from the score's strips and the file, numbered per page:
    # the images' segments with the noteheads read off the systems, their starts sharpened by
    # those notes
    from scorelink.search.reading import refine_starts, timeline

    whole, *halves = embedder.sheet_with_halves(two_pages["strips"])
    spec = spectrogram(read_audio(two_pages["flac"]))
    read = timeline(two_pages["heads"])
    expected = align.align(spec, whole, embedder, halves=tuple(halves), read=read)  # the index
    expected.segments = refine_starts(spec, expected.segments, read)  # keeps halves and heads
    assert expected.evidence == "image+read"
    layout = two_pages["layout"]
    assert [(s["page"], s["system"], s["start"], s["end"]) for s in answer["systems"]] == [
        (*layout[s.system], round(s.start, 2), round(s.end, 2)) for s in expected.systems]
    assert {s["evidence"] for s in answer["systems"]} == {"image+read"}
    assert answer["recording"] == "take" and not answer["cached"]
    assert {s["page"] for s in answer["systems"]} == {1, 2}, "the chorale's last system, on " \
        "page 2, should be found"
    assert [p["url"] for p in answer["pages"]] == ["/pages/chorale/page-001.png",
                                                   "/pages/chorale/page-002.png"]
    assert client.get(answer["pages"][1]["url"]).content[:4] == b"\x89PNG"

    again = client.post("/api/follow", data={"piece": "chorale", "recording": "take"}).json()
    assert again["cached"] and again["systems"] == answer["systems"]
    assert app.state.alignments.hits == 1

    buf = io.BytesIO()
    audio, sr = soundfile.read(two_pages["flac"])
    soundfile.write(buf, audio, sr, format="WAV")
    upload = client.post("/api/follow", data={"piece": "chorale"},
                         files={"file": ("my take.wav", buf.getvalue(), "audio/wav")}).json()
    assert upload["recording"] == "my take.wav" and not upload["cached"]
    assert upload["systems"] == answer["systems"]


def test_follow_refuses_bad_requests(app):
    client = TestClient(app)

    def refused(r, status: int, words: str) -> None:
        assert r.status_code == status and set(r.json()) == {"error"}, r.text
        assert words in r.json()["error"], r.text

    refused(client.post("/api/follow", data={"piece": "nope", "recording": "take"}), 404,
            "no indexed score 'nope'")
    refused(client.post("/api/follow", data={"piece": "chorale", "recording": "nope"}), 404,
            "no indexed recording 'nope'")
    refused(client.post("/api/follow", data={"piece": "chorale"}), 422, "give one recording")
    refused(client.post("/api/follow", data={"piece": "chorale", "recording": "take"},
                        files={"file": ("a.wav", b"x", "audio/wav")}), 422, "give one recording")
    refused(client.post("/api/follow", data={"recording": "take"}), 422, "piece")
    short = io.BytesIO()
    soundfile.write(short, 0.3 * np.sin(np.arange(22050) / 5.0), 22050, format="WAV")
    refused(client.post("/api/follow", data={"piece": "chorale"},
                        files={"file": ("short.wav", short.getvalue(), "audio/wav")}), 422,
            "far too short")
    refused(client.get("/recordings/nope"), 404, "no indexed recording")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed")
def test_page_follows_the_recording(app, tmp_path):
    """While the audio's time moves, the system whose [start, end) holds it is highlighted
    and its page shown; clicking a system seeks to where it is first heard."""
    from playwright.sync_api import sync_playwright

    shots = Path("/tmp/scorelink-follow-test")
    shots.mkdir(exist_ok=True)
    with serving(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.click("#tab-follow")
        page.wait_for_function("document.getElementById('recording').options.length > 1")
        page.select_option("#recording", "take")
        page.select_option("#score", "chorale")
        page.click("#follow-go")
        page.wait_for_selector("#follow-page .sys", timeout=60_000)
        page.wait_for_function("document.getElementById('player').readyState >= 1")
        plan = page.evaluate("plan")

        def at(t: float) -> tuple[str | None, str]:
            page.evaluate(f"document.getElementById('player').currentTime = {t}")
            page.wait_for_function(f"Math.abs(document.getElementById('player')"
                                   f".currentTime - {t}) < 0.01")
            page.wait_for_function("document.getElementById('where').textContent"
                                   f".startsWith('{t:.1f} s')")
            # a page turn redraws the page's systems: wait until the redrawn one is marked
            # (under load the marking could come a moment after the label)
            page.wait_for_function("document.querySelector('#follow-page .sys.now') !== null",
                                   timeout=5_000)
            now = page.locator("#follow-page .sys.now")
            return (now.get_attribute("data-system") if now.count() else None,
                    page.text_content("#page-label"))

        for k, s in enumerate(plan["systems"]):
            mid = round((s["start"] + s["end"]) / 2, 2)
            assert at(mid) == (str(s["id"]), f"page {s['page']} of 2"), s
            assert page.locator("#follow-page .sys.now").count() == 1
            page.screenshot(path=str(shots / f"at-{k}.png"))
        # playing across a boundary moves the highlight on by itself
        a, b = plan["systems"][-2], plan["systems"][-1]
        assert at(round(a["end"] - 0.4, 2))[0] == str(a["id"])
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_selector(f"#follow-page .sys.now[data-system='{b['id']}']",
                               timeout=10_000)
        page.evaluate("document.getElementById('player').pause()")
        # clicking a system seeks to its first start (page 1's first system)
        page.click("#prev-page")
        first = next(s for s in plan["systems"] if s["page"] == 1)
        page.click(f"#follow-page .sys[data-system='{first['id']}']")
        page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime"
                               f" - {first['start']}) < 0.05")
        page.wait_for_selector(f"#follow-page .sys.now[data-system='{first['id']}']")
        page.screenshot(path=str(shots / "clicked.png"), full_page=True)
        browser.close()
