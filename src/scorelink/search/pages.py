"""Real score pages (PNG, JPEG, PDF) -> pages at PAGE_WIDTH -> passage strips.

The search indexes scans, photos and PDFs of printed music with no boxes drawn by hand:
`load_pages` reads a file (Pillow for images, pypdfium2 for PDFs) into grayscale pages
PAGE_WIDTH px wide, as the dataset's pages are; `scorelink.search.staves.find_systems` finds
the systems of a page; `system_strips` cuts the STRIP_HEIGHT-px strip centred on each system, as
`scorelink.data.passages.strip` does for engraved pages, deskewed and resized so that staves are
STAFF_HEIGHT px tall, the scale the models were trained at.

Coordinates are continuous page pixels: row r spans [r, r + 1), as in the dataset's boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorelink.constants import PAGE_WIDTH, STAFF_HEIGHT, STRIP_HEIGHT
from scorelink.errors import ScoreError
from scorelink.search.staves import SystemBox

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["SUFFIXES", "across_scale", "load_pages", "strip_scale", "system_strips"]

SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")
MAX_PIXELS = 80_000_000  # per image or rendered PDF page, checked before decoding (below
# Pillow's own decompression-bomb warning at ~89 MP)
PDF_OVERSAMPLE = 2  # PDF pages are rendered at twice PAGE_WIDTH, then downsampled
SCALE_TOLERANCE = 0.1  # staves within 10 % of STAFF_HEIGHT are cut at the page's own scale
_LEFT_MARGIN = 20  # px kept left of a system shifted to fit a strip (engraved ones start at 19)


# --- reading files -----------------------------------------------------------


def load_pages(path: str | Path, *, normalise: bool = True) -> list[np.ndarray]:
    """Every page of a PNG, JPEG or PDF file as (H, PAGE_WIDTH) uint8 grayscale, 255 = white.

    Colour is converted to gray, transparency is composited on white, the aspect ratio is kept,
    and the page is normalised as a scan (`scorelink.search.scan.normalise_page`: white paper,
    no black borders, no speckle; `normalise=False` leaves the page as read, for comparisons).
    Raises ScoreError naming the file when it is missing, of another type, unreadable, larger
    than MAX_PIXELS, encrypted or without pages.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ScoreError(f"{path}: unsupported file type {suffix or '(none)'!r}; "
                         f"pages are read from {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise ScoreError(f"{path} does not exist or is not a file")
    from scorelink.search.scan import normalise_page

    pages = _pdf_pages(path) if suffix == ".pdf" else [_to_page_width(_image(path))]
    return [normalise_page(page) for page in pages] if normalise else pages


def _image(path: Path) -> Image:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            width, height = img.size  # read from the header; nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise ScoreError(f"{path}: the image is {width} x {height} px, more than "
                                 f"{MAX_PIXELS // 1_000_000} megapixels; scale it down first")
            return _gray(ImageOps.exif_transpose(img))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ScoreError(f"{path}: not a readable image ({exc})") from exc


def _gray(img: Image) -> Image:
    """Any Pillow image -> mode L, transparency composited on white."""
    from PIL import Image

    if img.mode == "I" or img.mode.startswith("I;16"):  # 16-bit scans, which Pillow would clip
        return Image.fromarray(np.clip(np.rint(np.asarray(img) / 257), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return img.convert("L")


def _pdf_pages(path: Path) -> list[np.ndarray]:
    import pypdfium2 as pdfium

    # Loaded through the raw API: PDFium's last-error code is only fresh right after a load
    # that failed, and pypdfium2 reads a stale one when a valid PDF has no pages.
    try:
        data = path.read_bytes()  # kept alive while PDFium reads from it
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read the file ({exc})") from exc
    handle = pdfium.raw.FPDF_LoadMemDocument64(data, len(data), None)
    if not handle:
        if pdfium.raw.FPDF_GetLastError() == pdfium.raw.FPDF_ERR_PASSWORD:
            raise ScoreError(f"{path}: the PDF is encrypted (password protected); "
                             "save an unprotected copy and index that")
        raise ScoreError(f"{path}: not a readable PDF (damaged, or not a PDF)")
    pdf = pdfium.PdfDocument(handle)
    pages = []
    try:
        if len(pdf) == 0:
            raise ScoreError(f"{path}: the PDF has no pages")
        for i in range(len(pdf)):
            page = pdf[i]
            width, height = page.get_size()  # points, rotation applied
            scale = PDF_OVERSAMPLE * PAGE_WIDTH / max(width, 1e-3)
            if not 0 < scale * width * scale * height <= MAX_PIXELS:
                raise ScoreError(f"{path}: page {i + 1} ({width:.0f} x {height:.0f} pt) cannot "
                                 f"be rendered {PAGE_WIDTH} px wide")
            bitmap = page.render(scale=scale, grayscale=True, fill_color=(255, 255, 255, 255))
            pages.append(_to_page_width(_gray(bitmap.to_pil())))
            page.close()
    except pdfium.PdfiumError as exc:
        raise ScoreError(f"{path}: cannot render the PDF ({exc})") from exc
    finally:
        pdf.close()
    return pages


def _to_page_width(img: Image) -> np.ndarray:
    from PIL import Image

    width, height = img.size
    if width != PAGE_WIDTH:
        size = (PAGE_WIDTH, max(1, round(height * PAGE_WIDTH / width)))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


# --- strips ------------------------------------------------------------------


def strip_scale(systems: list[SystemBox]) -> float:
    """Factor the page is resized by before cutting strips: 1 when its staves are within
    SCALE_TOLERANCE of STAFF_HEIGHT, else STAFF_HEIGHT / the median staff height."""
    if not systems:
        return 1.0
    height = float(np.median([s.staff_height for s in systems]))
    scale = STAFF_HEIGHT / height
    return 1.0 if abs(scale - 1) <= SCALE_TOLERANCE else scale


def system_strips(page: np.ndarray, systems: list[SystemBox]) -> np.ndarray:
    """(n, STRIP_HEIGHT, PAGE_WIDTH) uint8 strips centred on the systems; white beyond the page.

    The page is resized by `strip_scale(systems)` so that staves are STAFF_HEIGHT px tall, and
    each strip is deskewed when its lines drift by more than a pixel. At scale 1 and no skew
    this is exactly `scorelink.data.passages.strip`. A system that would be wider than the strip
    (less a margin of _LEFT_MARGIN px) after resizing is narrowed to fit: scans whose
    staves are enlarged to STAFF_HEIGHT keep their right ends.
    """
    from PIL import Image

    out = np.full((len(systems), STRIP_HEIGHT, PAGE_WIDTH), 255, dtype=np.uint8)
    if not systems:
        return out
    scale = strip_scale(systems)
    original = Image.fromarray(np.asarray(page, dtype=np.uint8))
    resized: dict[float, Image] = {}
    for n, system in enumerate(systems):
        # A system that would not fit the strip at this scale is narrowed to fit (its height
        # kept), rather than losing its right end.
        across = across_scale(system, scale)
        if across not in resized:
            image = original
            if (across, scale) != (1.0, 1.0):
                size = (max(1, round(original.width * across)),
                        max(1, round(original.height * scale)))
                image = original.resize(size, Image.Resampling.LANCZOS)
            resized[across] = image
        image = resized[across]
        pixels = np.asarray(image)
        left, right = system.left * across, system.right * across
        centre = system.centre * scale
        source = pixels
        drift = abs(np.tan(np.radians(system.skew)) * (right - left) * scale / across)
        if drift > 1.0:
            angle = np.degrees(np.arctan(np.tan(np.radians(system.skew)) * scale / across))
            rotated = image.rotate(angle, resample=Image.Resampling.BICUBIC,
                                   center=((left + right) / 2, centre), fillcolor=255)
            source = np.asarray(rotated)
        x0 = 0  # as passages.strip; a system too wide is shifted to keep what fits
        if right > PAGE_WIDTH:
            x0 = int(max(0, min(left - _LEFT_MARGIN, right + _LEFT_MARGIN - PAGE_WIDTH)))
        out[n] = _window(source, int(round(centre)) - STRIP_HEIGHT // 2, x0)
    return out


def across_scale(system: SystemBox, scale: float) -> float:
    """The horizontal factor `system_strips` resizes a system by: `scale`, or less for a
    system that would not fit the strip (less a margin of _LEFT_MARGIN px) at that scale."""
    room = PAGE_WIDTH - _LEFT_MARGIN - 4
    return min(scale, room / max(system.right - system.left, 1.0))


def _window(pixels: np.ndarray, top: int, left: int) -> np.ndarray:
    """(STRIP_HEIGHT, PAGE_WIDTH) window of pixels at (top, left), white beyond them."""
    out = np.full((STRIP_HEIGHT, PAGE_WIDTH), 255, dtype=np.uint8)
    a, b = max(top, 0), min(top + STRIP_HEIGHT, pixels.shape[0])
    c, d = max(left, 0), min(left + PAGE_WIDTH, pixels.shape[1])
    if a < b and c < d:
        out[a - top : b - top, c - left : d - left] = pixels[a:b, c:d]
    return out
