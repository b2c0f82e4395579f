"""The web page: upload or record an audio clip, see the best pages with the matched system
highlighted; click a system to hear where it sounds in the best recording. Or follow a recording
(indexed, or uploaded) along an indexed score: the page plays it, highlights the system that
sounds and turns the pages; clicking a system seeks there.

An audio search answers `{"results": [...], "confidence": {...}}`: the calibrated confidence
of `search/confidence.py`; under its threshold the page says "no confident match" above the
closest answers. A clip with no music (near-silent, noise) answers 422.

A small FastAPI app over one index (read-only). Bad requests answer 4xx with a message and
never take the server down; uploads are capped; searches and alignments run in the worker
threads, one at a time per index (the model and SQLite connection are shared).

Every error answers one shape, `{"error": "what went wrong"}`: 404 for what does not exist,
413 for an upload over the cap, 422 for a request that cannot be answered as given (a bad
field, an empty or unreadable upload, silence, ...), 500 for a fault of the server. Messages
name an upload by its file name, never by the temporary file it is kept in.

The index is checked on every request (one stat of index.json): when `scorelink index --add`
has committed a new generation, the server opens it and answers from it from then on.
"""

from __future__ import annotations

import io
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from scorelink.errors import ScorelinkError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_CLIP_SECONDS = 120.0
MAX_TOP = 50
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".mp3": "audio/mpeg"}


class LiveIndex:
    """The served index, opened again when a newer generation is committed. Use `get()` while
    holding `lock` (searches share the model and the SQLite connection)."""

    def __init__(self, path: str | Path, fingerprint: str):
        from scorelink.search.index import Index

        self.path, self.fingerprint = path, fingerprint
        self.index = Index(path)
        self.index.check_model(fingerprint)
        self.lock = threading.Lock()
        self.reloads = 0

    def get(self):
        from scorelink.search.index import Index

        if self.index.changed():
            try:
                fresh = Index(self.path)
                fresh.check_model(self.fingerprint)
            except ScorelinkError:
                return self.index  # mid-change or refused: answer from the open one meanwhile
            self.index.close()
            self.index, self.reloads = fresh, self.reloads + 1
        return self.index


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _field_errors(exc: RequestValidationError) -> str:
    """FastAPI's list of field problems as one sentence."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(index_path: str | Path, checkpoint: str | None = None):
    from scorelink.search import confidence, query
    from scorelink.search.embed import Embedder
    from scorelink.search.index import Index
    from scorelink.web import follow

    first = Index(index_path)
    name = first.info["model"]["name"]
    first.close()
    embedder = Embedder.load(checkpoint or (None if name.startswith("shipped:") else name))
    live = LiveIndex(index_path, embedder.fingerprint)
    lock = live.lock
    root = Path(index_path).resolve()
    app = FastAPI(title="scorelink", docs_url=None, redoc_url=None)
    app.state.live = live
    alignments = app.state.alignments = follow.AlignmentCache()

    @app.exception_handler(ScorelinkError)
    async def _bad_input(request: Request, exc: ScorelinkError):
        return _error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_fields(request: Request, exc: RequestValidationError):
        return _error(422, _field_errors(exc))

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception):
        return _error(500, f"the server failed ({type(exc).__name__}); see its log")

    @app.middleware("http")
    async def _cap_upload(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_UPLOAD_BYTES:
            return _error(413, f"upload larger than {MAX_UPLOAD_BYTES >> 20} MB")
        return await call_next(request)

    def _read_upload(upload: UploadFile) -> bytes:
        data = upload.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{_upload_name(upload)}: upload larger than "
                                     f"{MAX_UPLOAD_BYTES >> 20} MB")
        if not data:
            raise HTTPException(422, f"{_upload_name(upload)}: the upload is empty")
        return data

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (resources.files("scorelink.web") / "static" / "index.html").read_text()

    @app.get("/api/info")
    def info() -> dict:
        with lock:
            index = live.get()
            return {"model": name, "systems": index.sheet.ntotal,
                    "windows": index.audio.ntotal, "generation": index.generation}

    @app.post("/api/search/audio")
    def search_audio(file: Annotated[UploadFile, File()],
                     start: Annotated[float | None, Form()] = None,
                     end: Annotated[float | None, Form()] = None,
                     top: Annotated[int, Form()] = 5) -> dict:
        from scorelink.search.recordings import read_audio

        if not 1 <= top <= MAX_TOP:
            raise HTTPException(422, f"top: must be 1 to {MAX_TOP}, not {top}")
        data = _read_upload(file)
        suffix = Path(file.filename or "clip.wav").suffix or ".wav"
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            samples = read_audio(tmp.name, start=start, end=end, max_seconds=MAX_CLIP_SECONDS,
                                 name=_upload_name(file))
        with lock:
            index = live.get()
            hits, verdict = confidence.search_audio(index, embedder, samples, top=top)
            for h in hits:
                h["page_url"] = f"/{h['page_image']}"
                h["page_systems"] = query.page_systems(index, h["piece"], h["page"])
        return {"results": hits, "confidence": verdict.to_dict()}

    @app.get("/api/systems/{system_id}/recording")
    def system_recording(system_id: int) -> dict:
        """The best recording window for an indexed system (what clicking a system plays)."""
        with lock:
            index = live.get()
            if not 0 <= system_id < index.sheet.ntotal:
                raise HTTPException(404, f"no system {system_id}")
            vector = index.sheet.reconstruct(system_id)[None]
            scores, ids = index.nearest("audio", vector, 1)
            if ids[0][0] < 0:
                raise HTTPException(404, "the index holds no recordings")
            row = index.rows("audio", ids[0][:1])[0]
        return {"window": row["id"], "recording": row["recording"], "start": row["start"],
                "end": row["end"], "score": round(float(scores[0][0]), 4),
                "audio_url": f"/audio/{row['id']}" if row["audio_path"] else None}

    @app.get("/audio/{window_id}")
    def audio(window_id: int) -> Response:
        import soundfile

        with lock:
            index = live.get()
            rows = index.rows("audio", [window_id]) if 0 <= window_id < index.audio.ntotal \
                else []
        if not rows or not rows[0]["audio_path"] or not Path(rows[0]["audio_path"]).is_file():
            raise HTTPException(404, "no audio for this window")
        r = rows[0]
        info = soundfile.info(r["audio_path"])
        samples, sr = soundfile.read(r["audio_path"], start=int(r["start"] * info.samplerate),
                                     stop=int(r["end"] * info.samplerate), dtype="float32")
        buf = io.BytesIO()
        soundfile.write(buf, samples, sr, format="WAV", subtype="PCM_16")
        return Response(buf.getvalue(), media_type="audio/wav")

    @app.get("/api/library")
    def library() -> dict:
        """The indexed scores and the indexed recordings the page can play (what it follows)."""
        with lock:
            index = live.get()
            scores, recordings = follow.pieces(index), follow.recordings(index)
        return {"scores": scores,
                "recordings": [{"recording": r["recording"], "piece": r["piece"],
                                "seconds": round(r["seconds"], 2),
                                "audio_url": "/recordings/" + quote(r["recording"])}
                               for r in recordings]}

    @app.get("/recordings/{name:path}")
    def recording_file(name: str) -> FileResponse:
        """An indexed recording's whole audio file (with byte ranges, so the page can seek)."""
        with lock:
            try:
                path = follow.recording_path(live.get(), name)
            except ScorelinkError as exc:
                raise HTTPException(404, str(exc)) from exc
        return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower(),
                                                             "application/octet-stream"))

    @app.post("/api/follow")
    def follow_recording(piece: Annotated[str, Form()],
                         recording: Annotated[str | None, Form()] = None,
                         file: Annotated[UploadFile | None, File()] = None) -> dict:
        """Align a recording to an indexed score: an indexed recording by name, or an upload.
        Answers `follow.follow`'s dict with "recording" (the name) and "cached"."""
        from scorelink.search.recordings import read_audio

        if (recording is None) == (file is None):
            raise HTTPException(422, "give one recording: `recording` (an indexed recording's "
                                     "name) or `file` (an upload)")
        with lock:
            index = live.get()
            if not follow.has_piece(index, piece):
                raise HTTPException(404, f"no indexed score {piece!r}")
            if file is None:
                try:
                    path = follow.recording_path(index, recording)
                except ScorelinkError as exc:
                    raise HTTPException(404, str(exc)) from exc
        if file is not None:
            data, name = _read_upload(file), _upload_name(file)
            key = follow.upload_key(data)
        else:
            data, name, key = None, recording, follow.file_key(path)
        with lock:
            cache_key = (live.get().generation, piece, key)
            answer = alignments.get(cache_key)
        if answer is not None:
            return {"recording": name, **answer, "cached": True}
        if data is None:
            samples = read_audio(path, max_seconds=follow.MAX_RECORDING_SECONDS, name=name)
        else:
            with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".wav") as tmp:
                tmp.write(data)
                tmp.flush()
                samples = read_audio(tmp.name, max_seconds=follow.MAX_RECORDING_SECONDS,
                                     name=name)
        with lock:
            index = live.get()
            answer = follow.follow(index, embedder, piece, samples)
            alignments.put((index.generation, piece, key), answer)
        return {"recording": name, **answer, "cached": False}

    @app.get("/pages/{path:path}")
    def page_image(path: str) -> FileResponse:
        target = (root / "pages" / path).resolve()
        if not target.is_relative_to(root / "pages") or not target.is_file():
            raise HTTPException(404, "no such page")
        return FileResponse(target, media_type="image/png")

    return app


def _upload_name(upload: UploadFile) -> str:
    return Path(upload.filename).name if upload.filename else "the upload"


def serve(index_path: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          checkpoint: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(index_path, checkpoint), host=host, port=port, log_level="info")
