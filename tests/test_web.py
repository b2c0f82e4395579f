"""The web page: API answers and refusals, concurrency, and the page itself in headless Chromium."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile
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
    def post(data: bytes, name: str = "x.wav"):
        return client.post("/api/search/audio", files={"file": (name, data, "audio/wav")})

    assert post(b"").status_code == 400
    bad = post(b"RIFF....not really audio" * 50)
    assert bad.status_code == 422 and "cannot read" in bad.json()["error"]
    silence = io.BytesIO()
    soundfile.write(silence, np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE, format="WAV")
    assert "silent" in post(silence.getvalue()).json()["error"]
    short = io.BytesIO()
    soundfile.write(short, 0.3 * np.ones(SAMPLE_RATE // 4), SAMPLE_RATE, format="WAV")
    assert post(short.getvalue()).status_code == 422
    assert post(b"\0" * (MAX_UPLOAD_BYTES + 10)).status_code == 413
    assert client.get("/pages/../index.json").status_code == 404
    assert client.get("/pages/%2e%2e/index.json").status_code == 404
    assert client.get("/api/systems/99999/recording").status_code == 404
    assert client.get("/audio/99999").status_code == 404
    assert client.post("/api/search/audio").status_code == 422  # no file at all
    # after all that, and under concurrent load, the server still answers
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: client.post(
            "/api/search/audio", files={"file": ("c.wav", clip, "audio/wav")}).status_code,
            range(6)))
    assert codes == [200] * 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed")
def test_page_in_headless_chromium(data_index, clip, tmp_path):
    import uvicorn
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(data_index), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    clip_path = tmp_path / "clip.wav"
    clip_path.write_bytes(clip)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--autoplay-policy="
                                              "no-user-gesture-required"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
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
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    shutil.copy(tmp_path / "page.png", Path("/tmp/scorelink-web-test.png"))
