"""``Document`` -> one self-contained HTML page: inline CSS, plots inlined as base64
PNG, nothing fetched from anywhere."""

from __future__ import annotations

import base64
import html

from ipcbench_report.layout import Bullets, Document, Figures, Para, Table, Text

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
.tbl{overflow:auto;max-height:80vh;margin:.5em 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{position:sticky;top:0;background:#eef2f7;z-index:1}
tr:nth-child(even) td{background:#fafafa}
td.error{color:#a00;font-weight:600;cursor:help}td.warn{background:#fff3cd!important}
td.missing{color:#999}td.best{background:#d8f0dc!important;font-weight:600}td[title]{cursor:help}
figure{display:inline-block;margin:.5em 1em .5em 0}img{max-width:100%;height:auto}
nav a{margin-right:1em}
"""


def _e(s: str) -> str:
    return html.escape(s, quote=True)


def _td(t: Text | str, tag: str = "td") -> str:
    t = t if isinstance(t, Text) else Text(str(t))
    attrs = (f' class="{t.style}"' if t.style else "") + \
        (f' title="{_e(t.tooltip)}"' if t.tooltip else "")
    return f"<{tag}{attrs}>{_e(t.text)}</{tag}>"


def _block(block) -> str:
    if isinstance(block, Table):
        head = "".join(_td(h, "th") for h in block.headers)
        body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>"
                         for row in block.rows)
        return f'<div class="tbl"><table><thead><tr>{head}</tr></thead>' \
               f"<tbody>\n{body}\n</tbody></table></div>"
    if isinstance(block, Para):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Figures):
        return "\n".join(
            f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,'
            f'{base64.b64encode(path.read_bytes()).decode("ascii")}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
            for path, caption in block.items)
    raise TypeError(f"unknown block {block!r}")


def render(doc: Document) -> str:
    """The whole page as a string."""
    nav = "".join(f'<a href="#s{i}">{_e(s.title)}</a>' for i, s in enumerate(doc.sections))
    sections = "\n".join(
        f'<section id="s{i}"><h2>{_e(s.title)}</h2>\n'
        + "\n".join(_block(b) for b in s.blocks) + "</section>"
        for i, s in enumerate(doc.sections))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(doc.title)}</title><style>{_CSS}</style></head>\n<body>"
            f"<h1>{_e(doc.title)}</h1><nav>{nav}</nav>\n{sections}\n</body></html>\n")
