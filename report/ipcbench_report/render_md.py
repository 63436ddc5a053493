"""``Document`` -> GitHub-flavoured Markdown, sized for ``$GITHUB_STEP_SUMMARY``.

Contract: ``render(doc)`` returns at most ``LIMIT`` bytes of UTF-8: optional tables are
dropped first, then the text is cut with a final note. Plots are listed by file name
(the PNGs sit beside report.md; Markdown summaries cannot embed them).
"""

from __future__ import annotations

from ipcbench_report.layout import Bullets, Document, Figures, Para, Table, Text

LIMIT = 1024 * 1024 - 1024        # GitHub's step-summary limit is 1 MiB; keep a margin


def _cell(t: Text | str) -> str:
    s = t.text if isinstance(t, Text) else str(t)
    return s.replace("|", "\\|").replace("\n", " ") or " "


def table(headers: list, rows: list[list]) -> str:
    """A GFM table (cells are ``Text`` or strings)."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _block(block, with_optional: bool) -> str:
    if isinstance(block, Table):
        if block.optional and not with_optional:
            return "_(table left out to stay under GitHub's 1 MiB summary limit; see " \
                   "results.csv or index.html)_"
        return table(block.headers, block.rows)
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Figures):
        return "\n".join(f"- `{path.name}`: {caption}" for path, caption in block.items) \
            + "\n\nThe plots are PNG files beside this file and inlined in index.html."
    raise TypeError(f"unknown block {block!r}")


def _render(doc: Document, with_optional: bool) -> str:
    parts = [f"# {doc.title}"]
    for section in doc.sections:
        parts.append(f"## {section.title}")
        parts += [_block(b, with_optional) for b in section.blocks]
    return "\n\n".join(parts) + "\n"


def render(doc: Document) -> str:
    """Markdown of the whole document, at most ``LIMIT`` bytes."""
    text = _render(doc, True)
    if len(text.encode()) > LIMIT:
        text = _render(doc, False)
    if len(text.encode()) > LIMIT:
        note = "\n\n_(cut to stay under GitHub's 1 MiB summary limit; see index.html)_\n"
        text = text.encode()[:LIMIT - len(note.encode())].decode(errors="ignore") + note
    return text
