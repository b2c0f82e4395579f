"""Systems found on real page images and PDFs (scorelink.search.pages).

Ground truth: the chorale dataset's engraved pages, whose systems Verovio placed.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from scorelink.constants import PAGE_WIDTH, STAFF_HEIGHT, STRIP_HEIGHT
from scorelink.data.store import Dataset, piece_dir
from scorelink.errors import ScoreError
from scorelink.search.pages import MAX_PIXELS, load_pages, strip_scale, system_strips
from scorelink.search.staves import find_systems


@pytest.fixture(scope="module")
def engraved(chorale_dataset) -> list[dict]:
    """Each page of the chorale dataset with its engraved systems and their dataset strips."""
    ds = Dataset(chorale_dataset)
    pages = []
    for piece in sorted({r["piece"] for r in ds}):
        info = json.loads((piece_dir(ds.root, piece) / "piece.json").read_text())
        first = {}  # one record per system (every rendition has the same strip and box)
        for r in ds.records(piece=piece):
            first.setdefault(r["system"], r)
        for page in range(info["pages"]):
            records = sorted((r for r in first.values() if r["page"] == page),
                             key=lambda r: r["system_on_page"])
            pages.append({
                "name": f"{piece} p{page + 1}",
                "image": ds.page(piece, page),
                "systems": [s for s in info["systems"] if s["page"] == page],
                "records": records,
                "strips": np.stack([ds.strip(r) for r in records]),
            })
    return pages


def _centres(systems) -> np.ndarray:
    return np.array([s.centre for s in systems])


def _same_strip(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal, or equal but for a one-row shift (a centre rounded the other way)."""
    return (np.array_equal(a, b) or np.array_equal(a[1:], b[:-1])
            or np.array_equal(a[:-1], b[1:]))


def _save_png(image: np.ndarray, path: Path, width: int | None = None) -> Path:
    img = Image.fromarray(image)
    if width is not None:
        img = img.resize((width, round(img.height * width / img.width)),
                         Image.Resampling.LANCZOS)
    img.save(path)
    return path


# --- finding systems ---------------------------------------------------------


def test_finds_the_engraved_systems(engraved):
    for page in engraved:
        found = find_systems(page["image"])
        assert len(found) == len(page["systems"]), page["name"]
        for box, truth, record in zip(found, page["systems"], page["records"], strict=True):
            assert box.staves == 2  # the chorales are engraved on grand staves
            assert abs(box.top - truth["staff_top"]) < 1.5, page["name"]
            assert abs(box.bottom - truth["staff_bottom"]) < 1.5, page["name"]
            assert abs(box.left - truth["left"]) < 4 and abs(box.right - truth["right"]) < 4
            assert abs(box.staff_height - STAFF_HEIGHT) < 1 and box.skew == 0
            top, left, bottom, right = record["box"]  # staff lines lie inside the note box
            assert top - 1 < box.top < box.bottom < bottom + 1
        strips = system_strips(page["image"], found)
        assert strips.shape == (len(found), STRIP_HEIGHT, PAGE_WIDTH) and strips.dtype == np.uint8
        assert strip_scale(found) == 1.0
        for ours, theirs in zip(strips, page["strips"], strict=True):
            assert _same_strip(ours, theirs), page["name"]


def test_resized_pages_give_the_same_systems(engraved, tmp_path):
    page = engraved[0]
    expected = _centres(find_systems(page["image"]))
    for name, width in (("twice.png", 2 * PAGE_WIDTH), ("narrow.png", 600)):
        pages = load_pages(_save_png(page["image"], tmp_path / name, width))
        assert len(pages) == 1 and pages[0].shape[1] == PAGE_WIDTH and pages[0].dtype == np.uint8
        found = find_systems(pages[0])
        assert len(found) == len(expected), name
        np.testing.assert_allclose(_centres(found), expected, atol=1.5)
        assert strip_scale(found) == 1.0
    Image.fromarray(page["image"]).convert("RGB").save(tmp_path / "colour.jpg", quality=80)
    found = find_systems(load_pages(tmp_path / "colour.jpg")[0])
    np.testing.assert_allclose(_centres(found), expected, atol=1.5)


def test_small_staves_are_resized_for_the_strips(engraved, tmp_path):
    """A page printed smaller (more paper around it): staves of ~19 px, cut at 28 px."""
    page = engraved[1]["image"]
    height, width = page.shape
    paper = np.full((height * 3 // 2, width * 3 // 2), 255, dtype=np.uint8)
    paper[:height, :width] = page
    small = load_pages(_save_png(paper, tmp_path / "small.png"))[0]
    found = find_systems(small)
    assert len(found) == len(engraved[1]["systems"])
    np.testing.assert_allclose(_centres(found), _centres(find_systems(page)) / 1.5, atol=1.5)
    assert abs(strip_scale(found) - 1.5) < 0.05
    for strip in system_strips(small, found):  # the system, centred, at the training scale
        (again,) = find_systems(strip)
        assert abs(again.centre - STRIP_HEIGHT / 2) < 1.5
        assert abs(again.staff_height - STAFF_HEIGHT) < 1.5


def test_pdf_pages(engraved, tmp_path):
    first, second = (Image.fromarray(p["image"]) for p in engraved[:2])
    first.save(tmp_path / "score.pdf", "PDF", save_all=True, append_images=[second])
    pages = load_pages(tmp_path / "score.pdf")
    assert len(pages) == 2 and all(p.shape[1] == PAGE_WIDTH for p in pages)
    for loaded, page in zip(pages, engraved[:2], strict=True):
        assert abs(loaded.shape[0] - page["image"].shape[0]) <= 1
        found = find_systems(loaded)
        np.testing.assert_allclose(_centres(found), _centres(find_systems(page["image"])),
                                   atol=1.5)


def test_skewed_noisy_scan(engraved):
    page = engraved[0]
    angle = 0.3  # degrees, counter-clockwise about the page centre
    rotated = Image.fromarray(page["image"]).rotate(angle, resample=Image.Resampling.BICUBIC,
                                                    fillcolor=255)
    noise = np.random.default_rng(0).normal(0, 15, page["image"].shape)
    scan = np.clip(np.asarray(rotated) + noise, 0, 255).astype(np.uint8)
    found = find_systems(scan)
    assert len(found) == len(page["systems"])
    cy, cx, a = page["image"].shape[0] / 2, page["image"].shape[1] / 2, np.radians(angle)
    for box, truth in zip(found, page["systems"], strict=True):
        x = (truth["left"] + truth["right"]) / 2 - cx
        y = (truth["staff_top"] + truth["staff_bottom"]) / 2 - cy
        assert abs(box.centre - (cy - np.sin(a) * x + np.cos(a) * y)) < 1.5
        assert abs(box.skew + angle) < 0.05
    for strip in system_strips(scan, found):  # deskewed: level lines, centred
        (again,) = find_systems(strip)
        assert abs(again.skew) < 0.05 and abs(again.centre - STRIP_HEIGHT / 2) < 1.5


def test_pages_without_music_have_no_systems(engraved):
    rng = np.random.default_rng(0)
    height, width = engraved[0]["image"].shape
    field = np.cumsum(np.cumsum(rng.normal(size=(height, width)), axis=0), axis=1)
    photo = (field - field.min()) / np.ptp(field) * 255  # smooth, photo-like
    pages = {
        "blank": np.full((height, width), 255, dtype=np.uint8),
        "noise": rng.integers(0, 256, (height, width), dtype=np.uint8),
        "gradient": np.tile(np.linspace(0, 255, height)[:, None], (1, width)).astype(np.uint8),
        "photo": photo.astype(np.uint8),
        "ruled paper": np.where(np.arange(height)[:, None] % 7 == 0, 0, 255)
        .repeat(width, axis=1).astype(np.uint8),
    }
    for name, page in pages.items():
        assert find_systems(page) == [], name


# --- reading files -----------------------------------------------------------


def test_transparent_and_16_bit_pngs(engraved, tmp_path):
    page = engraved[0]["image"]
    rgba = np.zeros((*page.shape, 4), dtype=np.uint8)  # black, opaque where there is ink
    rgba[..., 3] = 255 - page
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")  # composited on white
    Image.fromarray(page.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # not clipped
    for name in ("ink.png", "deep.png"):
        (loaded,) = load_pages(tmp_path / name)
        assert np.abs(loaded.astype(int) - page).max() <= 1, name


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height 8-bit gray pixels but holds almost none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


_PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _encrypted_pdf(user: bytes, owner: bytes = b"owner") -> bytes:
    """A one-page PDF locked with a password by the standard security handler (40-bit RC4,
    revision 2; PDF 1.7 algorithms 3.2-3.4), written by hand: no offline tool at hand encrypts."""
    pad = (user + _PDF_PAD)[:32]
    file_id, permissions = bytes(range(16)), -4
    o = _rc4(hashlib.md5((owner + _PDF_PAD)[:32]).digest()[:5], pad)
    key = hashlib.md5(pad + o + permissions.to_bytes(4, "little", signed=True) + file_id)
    u = _rc4(key.digest()[:5], _PDF_PAD)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>"
        % (o.hex().encode(), u.hex().encode(), permissions),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n" % (
        len(objects) + 1, file_id.hex().encode(), file_id.hex().encode())
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_bad_files_raise_score_errors(tmp_path):
    import pypdfium2 as pdfium

    locked = _encrypted_pdf(b"secret")
    assert len(pdfium.PdfDocument(locked, password="secret")) == 1  # a real encrypted PDF
    empty = pdfium.PdfDocument.new()
    empty.save(tmp_path / "empty.pdf")
    empty.close()
    files = {
        "corrupt.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a readable image"),
        "zero.pdf": (b"", "not a readable PDF"),
        "garbage.pdf": (b"%PDF-1.4\n" + bytes(range(256)), "not a readable PDF"),
        "locked.pdf": (locked, "encrypted"),
        "page.gif": (b"GIF89a", "unsupported file type"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    files["empty.pdf"] = (None, "no pages")  # after locked.pdf: PDFium's error code is stale
    files["missing.png"] = (None, "does not exist")
    for name, (_, message) in files.items():
        with pytest.raises(ScoreError, match=message) as error:
            load_pages(tmp_path / name)
        assert name in str(error.value)


def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch):
    side = int(MAX_PIXELS**0.5) + 100
    (tmp_path / "huge.png").write_bytes(_png_header_only(side, side))

    def no_decoding(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ScoreError, match="megapixels") as error:
        load_pages(tmp_path / "huge.png")
    assert "huge.png" in str(error.value)
