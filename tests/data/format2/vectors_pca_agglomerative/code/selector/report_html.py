"""Self-contained HTML pages (plots and thumbnails inlined as base64), one ``<section id=…>`` per question.

Nothing here decides anything: it renders tables, figures and galleries the report builders pass in.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; max-width: 100%; }
td, th { border: 1px solid #ddd; padding: .25em .5em; overflow-wrap: break-word; font-size: .92em; }
th { background: #f4f4f4; text-align: left; } tr.chosen td { background: #fff6d5; font-weight: 600; }
img.plot { max-width: 48%; margin: .3em; border: 1px solid #eee; }
.cluster { margin: .4em 0; } .cluster h3 { font-size: .95em; margin: .2em 0; }
figure.thumb { display: inline-block; margin: 2px; } figure.thumb img { width: 56px; height: 56px;
  image-rendering: pixelated; border: 1px solid #ccc; }
.note { color: #666; font-size: .9em; }
.alternatives { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: .8em; }
.alternative { border: 1px solid #e4e4e4; padding: .4em; min-width: 0; } .alternative h3 { margin: .2em 0; }
"""


def escape(value) -> str:
    return html.escape(str(value))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot(path: Path, alt: str) -> str:
    return f'<img class="plot" alt="{escape(alt)}" src="{data_uri(path.read_bytes())}">'


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return escape(value)


def table(frame: pd.DataFrame, highlight: pd.Series | None = None) -> str:
    # Long snake_case headers may break after an underscore, so a wide board fits the page.
    head = "".join(f"<th>{escape(c).replace('_', '_<wbr>')}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):  # tuples keep each column's type (ints stay ints)
        chosen = highlight is not None and bool(highlight.iloc[i])
        cells = "".join(f"<td>{fmt(v)}</td>" for v in row)
        rows.append(f'<tr{" class=chosen" if chosen else ""}>{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def pairs(values: dict) -> str:
    """A two-column table of ``name → value``."""
    return table(pd.DataFrame({"": list(values), "value": pd.Series(list(values.values()), dtype=object)}))


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def thumbnail(image: np.ndarray, size: int = 56) -> bytes:
    """PNG bytes of ``image`` fitted into ``size``×``size`` (small images enlarged without blurring)."""
    from PIL import Image

    from selector.data import encode_png

    picture = Image.fromarray(image)
    scale = size / max(picture.size)
    resample = Image.NEAREST if scale > 1 else Image.LANCZOS
    picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), resample)
    return encode_png(np.asarray(picture))


def gallery(members: list[tuple[int, int, list[tuple[str, np.ndarray]]]]) -> str:
    """``members``: (cluster, size, [(id, image), …]) per cluster; every thumbnail carries its cluster and id."""
    blocks = []
    for cluster, size, items in members:
        name = "noise / outliers" if cluster == -1 else f"cluster {cluster}"
        figures = "".join(
            f'<figure class="thumb" data-cluster="{cluster}" data-id="{escape(item_id)}" title="{escape(item_id)}">'
            f'<img alt="{escape(item_id)}" src="{data_uri(thumbnail(image))}"></figure>' for item_id, image in items)
        count = f"{size} point" + ("" if size == 1 else "s")
        blocks.append(f'<div class="cluster" data-cluster="{cluster}"><h3>{name} — {count}</h3>{figures}</div>')
    return "".join(blocks)


def page(title: str, sections: list[str], subtitle: str = "") -> str:
    note = f'<p class="note">{escape(subtitle)}</p>' if subtitle else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{note}{''.join(sections)}</body></html>")
