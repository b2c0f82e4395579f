"""The web page: API answers and refusals, concurrency, and the page itself in headless Chromium."""

from __future__ import annotations

import io
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import serving
from fastapi.testclient import TestClient

from scorelink.constants import SAMPLE_RATE
from scorelink.web.app import MAX_UPLOAD_BYTES, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def client(data_index):
    return TestClient(create_app(data_index))


@pytest.fixture(scope="module")
def clip(chorale_dataset) -> bytes:
    flac = next(Path(chorale_dataset).rglob("musescore-grand@1.00.flac"))
    audio, sr = soundfile.read(flac, frames=8 * SAMPLE_RATE)
    buf = io.BytesIO()
    soundfile.write(buf, audio, sr, format="WAV")
    return buf.getvalue()


def test_api_answers(client, clip):
    assert "scorelink" in client.get("/").text
    info = client.get("/api/info").json()
    assert info["systems"] > 0 and info["windows"] > 0
    r = client.post("/api/search/audio", files={"file": ("clip.wav", clip, "audio/wav")},
                    data={"top": "2"})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert len(hits) == 2 and hits[0]["rank"] == 1
    assert any(s["id"] == hits[0]["id"] for s in hits[0]["page_systems"])
    page = client.get(hits[0]["page_url"])
    assert page.status_code == 200 and page.content[:4] == b"\x89PNG"
    w = client.get(f"/api/systems/{hits[0]['id']}/recording").json()
    wav = client.get(w["audio_url"])
    audio, sr = soundfile.read(io.BytesIO(wav.content))
    assert sr == SAMPLE_RATE and abs(len(audio) / sr - (w["end"] - w["start"])) < 0.05


def test_api_refuses_bad_requests(client, clip):
    def post(data: bytes, name: str = "x.wav", **fields):
        return client.post("/api/search/audio", files={"file": (name, data, "audio/wav")},
                           data=fields)

    def refused(r, status: int, words: str = "") -> str:
        """One error shape everywhere: {"error": message}, naming uploads by their name."""
        assert r.status_code == status, r.text
        assert set(r.json()) == {"error"}, r.text
        message = r.json()["error"]
        assert words in message and "/tmp" not in message and tempfile.gettempdir() not in \
            message, message
        return message

    refused(post(b""), 422, "x.wav: the upload is empty")
    refused(post(b"RIFF....not really audio" * 50, name="take 3.wav"), 422,
            "cannot read take 3.wav as audio")
    silence = io.BytesIO()
    soundfile.write(silence, np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE, format="WAV")
    refused(post(silence.getvalue()), 422, "x.wav: the audio is silent")
    short = io.BytesIO()
    soundfile.write(short, 0.3 * np.ones(SAMPLE_RATE // 4), SAMPLE_RATE, format="WAV")
    refused(post(short.getvalue()), 422, "x.wav")
    refused(post(clip, start="6", end="2"), 422, "must be after the start")
    refused(post(clip, start="soon"), 422, "start")
    refused(post(clip, top="0"), 422, "top: must be 1 to 50")
    refused(post(b"\0" * (MAX_UPLOAD_BYTES + 10)), 413, "larger than")
    refused(client.get("/pages/../index.json"), 404)
    refused(client.get("/pages/%2e%2e/index.json"), 404)
    refused(client.get("/api/systems/99999/recording"), 404, "no system 99999")
    refused(client.get("/audio/99999"), 404)
    refused(client.get("/no/such/thing"), 404)
    refused(client.post("/api/search/audio"), 422, "file")  # no file at all
    # after all that, and under concurrent load, the server still answers
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: client.post(
            "/api/search/audio", files={"file": ("c.wav", clip, "audio/wav")}).status_code,
            range(6)))
    assert codes == [200] * 6


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed")
def test_page_in_headless_chromium(data_index, clip, tmp_path):
    from playwright.sync_api import sync_playwright

    clip_path = tmp_path / "clip.wav"
    clip_path.write_bytes(clip)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    with serving(create_app(data_index)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--autoplay-policy="
                                          "no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        page.wait_for_function("document.getElementById('info').textContent"
                               ".includes('systems')")
        page.set_input_files("#file", str(garbage))
        page.click("#search")
        page.wait_for_selector("#status.error")
        assert "cannot read" in page.text_content("#status")
        page.set_input_files("#file", str(clip_path))
        page.click("#search")
        page.wait_for_selector(".hit .sys.match", timeout=30_000)
        assert page.locator(".hit").count() >= 1
        page.click(".hit .sys.match >> nth=0")
        page.wait_for_selector(".hit audio", timeout=15_000)
        assert "s (score" in page.text_content(".hit .player")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "page.png", Path("/tmp/scorelink-web-test.png"))


def test_server_picks_up_what_index_add_added(data_index, tiny_ckpt, clip, tmp_path):
    """`index --add` while the server runs: the next request answers from the new generation,
    without a restart; while nothing changes, the open index is kept."""
    from scorelink.cli import main

    idx = tmp_path / "idx"
    shutil.copytree(data_index, idx)
    client = TestClient(create_app(idx))
    live = client.app.state.live
    before = client.get("/api/info").json()
    opened = live.index
    assert client.get("/api/info").json() == before and live.index is opened

    song = tmp_path / "song.wav"
    t = np.arange(int(12 * SAMPLE_RATE)) / SAMPLE_RATE
    soundfile.write(song, 0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 12)), SAMPLE_RATE)
    assert main(["index", "--out", str(idx), "--checkpoint", str(tiny_ckpt), "--add",
                 "--recordings", str(song), "--no-progress"]) == 0
    after = client.get("/api/info").json()
    assert after["generation"] == before["generation"] + 1
    assert after["windows"] > before["windows"] and after["systems"] == before["systems"]
    assert live.reloads == 1 and live.index is not opened
    r = client.post("/api/search/audio", files={"file": ("clip.wav", clip, "audio/wav")})
    assert r.status_code == 200, r.text
    last = after["windows"] - 1  # a window of the added recording
    assert client.get(f"/audio/{last}").status_code == 200
    assert live.reloads == 1
