"""`scorelink demo`: the built-in demo collection, indexed with the shipped model, queried in
both directions, with an HTML report of example queries.

1. builds the test split of the built-in corpus (held-out piano timbre; resumable),
2. indexes its systems and its tempo-1.0 audio passages with the shipped model,
3. runs every test passage through the index as a query, audio -> sheet and sheet -> audio,
   and prints R@1/10/25, MRR and median rank,
4. writes OUT/report.html: example queries with the retrieved system highlighted on its page,
   the correct one marked, and audio players.
"""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scorelink.errors import ScorelinkError
from scorelink.evaluate.metrics import retrieval_metrics
from scorelink.evaluate.report import format_table
from scorelink.progress import bar, note
from scorelink.search import query
from scorelink.search.index import Index

if TYPE_CHECKING:
    from scorelink.data.build import BuildConfig

EXAMPLES = 4  # example queries per direction in the report (half of them piano pieces)


def piano_pieces() -> set[str]:
    """The built-in corpus's solo piano pieces (its other pieces are chorales)."""
    from scorelink.data.sources import KEYBOARD_PIECES, _piece_id

    return {_piece_id(work.rsplit(".", 1)[0]) for work in KEYBOARD_PIECES}


def _examples(rng: np.random.Generator, rows: list[dict], piano: set[str]) -> list[int]:
    """Positions of the example queries among rows: up to half from piano pieces, the rest
    from any piece, drawn at random."""
    keyboard = [k for k, r in enumerate(rows) if r["piece"] in piano]
    first = list(rng.choice(keyboard, min(EXAMPLES // 2, len(keyboard)), replace=False))
    others = [k for k in range(len(rows)) if k not in set(first)]
    rest = rng.choice(others, min(EXAMPLES - len(first), len(others)), replace=False)
    return [int(k) for k in [*first, *rest]]


def demo_config(data: Path) -> BuildConfig:
    """The build settings of the demo collection. A folder from an earlier demo keeps its own
    training and validation settings: the demo builds only the test split, which they do not
    touch, so the folder is resumed instead of refused as built otherwise."""
    from scorelink.data.build import BuildConfig

    config = BuildConfig(source="corpus:chorales")
    try:
        old = BuildConfig.from_meta(json.loads((data / "dataset.json").read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError, ScorelinkError):
        return config  # none yet, or unreadable: the build says what is wrong with it
    same_test = (old.source, old.seed, old.test_soundfont, old.keep_audio) == (
        config.source, config.seed, config.test_soundfont, config.keep_audio)
    return old if same_test else config


def run_demo(out: str | Path = "demo", *, checkpoint: str | None = None, workers: int = 2,
             limit: int | None = None, progress: bool = True) -> dict:
    from scorelink.data.build import build
    from scorelink.data.sources import corpus_sources
    from scorelink.search.embed import Embedder
    from scorelink.search.indexing import index_collection

    out = Path(out)
    t0 = time.perf_counter()
    data = out / "data"
    print(f"1/4 building the demo collection (test split of the built-in corpus) in {data}")
    build(corpus_sources("chorales"), data, config=demo_config(data),
          workers=workers, only_split="test", limit=limit, progress=progress)
    note(f"loading the model ({checkpoint or 'the shipped model'})", enabled=progress)
    embedder = Embedder.load(checkpoint)
    idx_path = out / "index"
    if idx_path.exists():
        try:
            existing = Index(idx_path)
            existing.check_model(embedder.fingerprint)
        except Exception:  # noqa: BLE001 - any problem with an old index: make it anew
            shutil.rmtree(idx_path)
    if not idx_path.exists():
        print(f"2/4 indexing it with {embedder.name}")
        index_collection(idx_path, data=data, embedder=embedder, progress=progress)
    else:
        print(f"2/4 using the index in {idx_path}")
    index = Index(idx_path)
    print(f"3/4 querying: every test passage, both directions "
          f"({index.audio.ntotal} audio passages, {index.sheet.ntotal} systems)")
    ranks, answers = index_ranks(index, progress=progress)
    result = {"model": embedder.name, "data": str(data), "split": "test", "tempo": 1.0,
              **{d: retrieval_metrics(r) for d, r in ranks.items()},
              "queries": {d: int(len(r)) for d, r in ranks.items()}}
    print(format_table(result))
    piano = piano_pieces()
    rows = {"a2s": index.all_rows("audio"), "s2a": index.all_rows("sheet")}
    keep = {d: np.array([r["piece"] in piano for r in rows[d]]) for d in ranks}
    if all(k.any() for k in keep.values()):  # the same figures for the piano pieces alone
        result["piano"] = {d: retrieval_metrics(ranks[d][keep[d]]) for d in ranks}
        result["piano"]["queries"] = {d: int(keep[d].sum()) for d in ranks}
        print(format_table({**result, **result["piano"], "data": f"{data}, piano pieces"}))
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    report = write_report(out, index, ranks, answers, result, progress=progress)
    print(f"4/4 report: {report}  ({time.perf_counter() - t0:.0f} s in all)")
    return result


def index_ranks(index: Index, *, progress: bool = False
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rank of the correct answer for every indexed passage as a query, through FAISS.

    A2S: each audio passage against all systems (right: its own system). S2A: each system
    against all audio passages (right: any passage of that system; the best one counts).
    Returns (ranks per direction, top answers (ids) per direction).
    """
    systems, windows = index.all_rows("sheet"), index.all_rows("audio")
    key_of_system = {r["id"]: (r["piece"], r["system"]) for r in systems}
    key_of_window = {r["id"]: (r["piece"], r["system"]) for r in windows}
    ranks, answers = {}, {}
    with bar(total=len(windows) + len(systems), enabled=progress, desc="querying",
             unit="query") as b:
        _, ids = index.nearest("sheet", index.vectors("audio"), index.sheet.ntotal)
        b.update(len(windows) // 2)  # the search, then the ranks: about half the time each
        ranks["a2s"] = np.array([1 + [key_of_system[int(i)] for i in row].index(
            key_of_window[w["id"]]) for row, w in zip(ids, windows, strict=True)])
        answers["a2s"] = ids[:, :3]
        b.update(len(windows) - len(windows) // 2)
        _, ids = index.nearest("audio", index.vectors("sheet"), index.audio.ntotal)
        b.update(len(systems) // 2)
        ranks["s2a"] = np.array([1 + [key_of_window[int(i)] for i in row].index(
            key_of_system[s["id"]]) for row, s in zip(ids, systems, strict=True)])
        answers["s2a"] = ids[:, :3]
        b.update(len(systems) - len(systems) // 2)
    return ranks, answers


RETRIEVED, CORRECT = (221, 107, 32), (40, 160, 60)  # orange, green
MARGIN = 60  # px a page crop reaches above and below the systems it shows, at most


def _page_with_boxes(index: Index, system_row: dict, correct_row: dict | None, dest: Path,
                     *, colour: tuple[int, int, int] = RETRIEVED) -> str:
    """The system of system_row outlined in `colour`, and the correct system (green) if it is
    on the same page, cut from their page: the full width, from above the upper one to below
    the lower one, with what belongs to them (up to MARGIN, cut at the emptiest row between
    them and the next system: tempo marks, fermatas and ledger lines stay, the neighbours are
    left out)."""
    from PIL import Image, ImageDraw

    page = Image.open(index.root / system_row["page_image"]).convert("RGB")
    ink = (np.asarray(page.convert("L")) < 128).sum(axis=1)  # dark pixels per row
    draw = ImageDraw.Draw(page)
    shown = [system_row]
    if correct_row is not None and correct_row["page_image"] == system_row["page_image"]:
        shown.append(correct_row)
        t, left, b, r = (correct_row[k] for k in ("top", "left", "bottom", "right"))
        draw.rectangle([left - 9, t - 9, r + 9, b + 9], outline=CORRECT, width=4)
    t, left, b, r = (system_row[k] for k in ("top", "left", "bottom", "right"))
    draw.rectangle([left - 5, t - 5, r + 5, b + 5], outline=colour, width=3)
    top, bottom = crop_rows(index, shown, ink)
    page = page.crop((0, top, page.width, bottom))
    dest.parent.mkdir(parents=True, exist_ok=True)
    page.save(dest)
    return dest.name


def crop_rows(index: Index, shown: list[dict], ink: np.ndarray) -> tuple[int, int]:
    """[top, bottom) pixel rows of a crop of one page holding the systems `shown` (index rows
    of that page; `ink`: dark pixels per row of the page): up to MARGIN beyond them, and not
    past the emptiest row of the gap to another system of the page (the one nearest the
    middle of the gap among equals)."""
    upper = int(min(s["top"] for s in shown))
    lower = int(np.ceil(max(s["bottom"] for s in shown)))
    ids = {s["id"] for s in shown}
    others = [r for r in index.db.execute(
        "SELECT id, top, bottom FROM systems WHERE page_image = ?", (shown[0]["page_image"],))
        if r[0] not in ids]
    above = [int(np.ceil(r[2])) for r in others if r[2] <= upper]
    below = [int(r[1]) for r in others if r[1] >= lower]
    top = max(upper - MARGIN, _emptiest(ink, max(above), upper) if above else 0)
    bottom = min(lower + MARGIN, _emptiest(ink, lower, min(below)) + 1 if below else len(ink))
    return top, bottom


def _emptiest(ink: np.ndarray, a: int, b: int) -> int:
    """The row in [a, b] with the least ink, the one nearest the middle among equals."""
    rows = np.arange(a, b + 1)
    least = rows[ink[a:b + 1] == ink[a:b + 1].min()]
    return int(least[np.argmin(np.abs(least - (a + b) / 2))])


def _clip(window: dict, dest: Path) -> str | None:
    import soundfile

    if not window.get("audio_path") or not Path(window["audio_path"]).is_file():
        return None
    info = soundfile.info(window["audio_path"])
    audio, sr = soundfile.read(window["audio_path"], start=int(window["start"] * info.samplerate),
                               stop=int(window["end"] * info.samplerate))
    soundfile.write(dest, audio, sr, format="OGG", subtype="VORBIS")
    return dest.name


def write_report(out: Path, index: Index, ranks: dict, answers: dict, result: dict, *,
                 progress: bool = False) -> Path:
    assets = out / "report"
    shutil.rmtree(assets, ignore_errors=True)
    assets.mkdir(parents=True)
    systems = {r["id"]: r for r in index.all_rows("sheet")}
    windows = {r["id"]: r for r in index.all_rows("audio")}
    by_key = {(r["piece"], r["system"]): r for r in systems.values()}
    def where(r: dict) -> str:  # page and system as people count them (on the page, from 1)
        return "page {}, system {}".format(*query.on_page(index, r))

    rng = np.random.default_rng(0)
    parts = [f"<h1>scorelink demo</h1><p>Model <code>{html.escape(result['model'])}</code>; "
             f"{len(windows)} audio passages and {len(systems)} systems of the built-in test "
             "split (held-out piano timbre, tempo 1.0). Every passage is a query.</p>",
             "<table><tr><th>direction</th><th>R@1</th><th>R@10</th><th>R@25</th><th>MRR</th>"
             "<th>MR</th></tr>"]
    for d in ("a2s", "s2a"):
        m = result[d]
        parts.append(f"<tr><td>{d.upper()}</td><td>{m['R@1']:.1f}</td><td>{m['R@10']:.1f}</td>"
                     f"<td>{m['R@25']:.1f}</td><td>{m['MRR']:.3f}</td><td>{m['MR']:.0f}</td></tr>")
    parts.append("</table><h2>Audio &rarr; sheet: which line is this?</h2>")
    window_ids, system_ids = sorted(windows), sorted(systems)
    piano = piano_pieces()
    chosen = _examples(rng, [windows[i] for i in window_ids], piano)
    for k, q in enumerate(bar(chosen, enabled=progress, desc="report, audio queries",
                              unit="example")):
        w = windows[window_ids[q]]
        clip = _clip(w, assets / f"a2s-{k}.ogg")
        top = systems[int(answers["a2s"][q][0])]
        correct = by_key[(w["piece"], w["system"])]
        imgs = [_page_with_boxes(index, top, correct, assets / f"a2s-{k}.png")]
        verdict = "right" if ranks["a2s"][q] == 1 else f"correct system at rank {ranks['a2s'][q]}"
        elsewhere = ""
        if correct["page_image"] != top["page_image"]:  # show where the right answer is too
            imgs.append(_page_with_boxes(index, correct, None, assets / f"a2s-{k}-correct.png",
                                         colour=CORRECT))
            elsewhere = (f"<br><b>Correct</b>: {html.escape(correct['piece'])}, "
                         f"{where(correct)} (second image)")
        parts.append(
            f"<div class=ex><p><b>Query</b>: {html.escape(w['recording'])}, "
            f"{w['start']:.1f}&ndash;{w['end']:.1f} s "
            + (f"<audio controls src='report/{clip}'></audio>" if clip else "")
            + f"<br><b>Top answer</b>: {html.escape(top['piece'])}, {where(top)} "
            f"({verdict}; orange: retrieved, green: correct)"
            f"{elsewhere}</p>" + "".join(f"<img src='report/{i}'>" for i in imgs) + "</div>")
    parts.append("<h2>Sheet &rarr; audio: where does this line sound?</h2>")
    chosen = _examples(rng, [systems[i] for i in system_ids], piano)
    for k, q in enumerate(bar(chosen, enabled=progress, desc="report, sheet queries",
                              unit="example")):
        s = systems[system_ids[q]]
        img = _page_with_boxes(index, s, None, assets / f"s2a-{k}.png")
        items = []
        for j, wid in enumerate(answers["s2a"][q]):
            w = windows[int(wid)]
            clip = _clip(w, assets / f"s2a-{k}-{j}.ogg")
            mark = "&#10004; right" if (w["piece"], w["system"]) == (s["piece"], s["system"]) \
                else "&#10008; other"
            items.append(f"<li>{html.escape(w['recording'])} {w['start']:.1f}&ndash;"
                         f"{w['end']:.1f} s ({mark}) "
                         + (f"<audio controls src='report/{clip}'></audio>" if clip else "")
                         + "</li>")
        parts.append(f"<div class=ex><p><b>Query</b>: {html.escape(s['piece'])}, "
                     f"{where(s)} (outlined)</p>"
                     f"<img src='report/{img}'><ol>{''.join(items)}</ol></div>")
    style = ("<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:20px auto;"
             "color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:4px 10px;text-align:right}.ex{border-top:1px solid #ddd;margin:18px 0}"
             "img{max-width:100%;border:1px solid #ddd}audio{vertical-align:middle;height:30px}"
             "</style>")
    path = out / "report.html"
    path.write_text(f"<!doctype html><html><head><meta charset=utf-8><title>scorelink demo"
                    f"</title>{style}</head><body>{''.join(parts)}</body></html>\n")
    return path
