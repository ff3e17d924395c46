"""Draw any table of rnr/reporting/table_specs.py: one renderer per format (Markdown, LaTeX, HTML, CSV).

A :class:`View` is a table filled for one run of ``rnr tables``: its columns (a
:class:`~rnr.reporting.table_specs.Table`), a title, blocks of rows of :class:`Cell` (one cell per column; a block may
have a heading, and its last ``summary_rows`` rows are summaries such as the mean row), notes under the table, and the
configurations' display labels. The renderers decide only how a cell looks in their format, from its column's ``format``
(rnr.reporting.table_specs.FORMATS); what a cell holds, which is bold and which marks it carries are the builder's
decisions (rnr/reporting/tables.py, rnr/reporting/table_marks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import write_csv
from .table_marks import LATEX_MARKS, MARK_NOT_CONVERGED, REFERENCE_MARK
from .table_specs import Column, Table, with_columns


@dataclass
class Cell:
    """One cell: ``value`` (number, text, or None for missing); ``spread`` for ``mean_std`` columns (a std, an
    interval ``(low, high)``, or None); ``mark`` (markers appended, e.g. ``*‡``); ``bold``."""

    value: Any = None
    spread: float | tuple[float, float] | None = None
    mark: str = ""
    bold: bool = False


@dataclass
class Block:
    """Rows (one :class:`Cell` per column) under an optional heading; the last ``summary_rows`` rows are
    summaries (the mean row), set off by a rule in LaTeX. ``latex_heading``: set for a secondary block that
    LaTeX shows as its summary rows only, under this heading (a table with its notes must fit one page)."""

    rows: list[list[Cell]]
    heading: str | None = None
    summary_rows: int = 0
    latex_heading: str | None = None


@dataclass
class View:
    """A table filled for drawing (module docstring). ``notes`` are paragraphs with inline Markdown
    (```code```, ``**bold**``); ``labels``: configuration -> display label; ``latex_label``: ``\\label`` key."""

    table: Table
    title: str
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    latex_label: str = ""
    empty_note: str = "The table is empty."


def _page(table: Table, row: list[Cell]) -> list[tuple[Column, Cell]]:
    """The (column, cell) pairs of a row that the pages draw (a row has one cell per column of the table)."""
    return [(c, cell) for c, cell in zip(table.columns, row, strict=True) if c.pages]


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def value_text(column: Column, value: Any, labels: dict[str, str] | None = None) -> str:
    """A value as a page shows it, by the column's format (rnr.reporting.table_specs.FORMATS)."""
    fmt = column.format
    if isinstance(value, str) and fmt != "configuration":
        return value
    if fmt == "configuration":
        return (labels or {}).get(str(value), str(value))
    if fmt == "yes_no":
        return "n/a" if _missing(value) else ("yes" if bool(value) else f"no {MARK_NOT_CONVERGED}")
    if _missing(value):
        return "–" if fmt == "full" else "n/a"
    if fmt == "text":
        return str(value)
    if fmt == "full":
        if isinstance(value, bool | np.bool_):
            return str(bool(value))
        value = float(value)
        # Whole numbers (counts, rank statistics) in full, others to 4 significant digits.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format(value, ".4g")
    if fmt == "d":
        return str(int(round(float(value))))
    if fmt == "mean_std":
        return mean_text(value, None)
    return format(float(value), fmt)


def mean_text(mean: Any, spread: Any, pm: str = " ± ", dash: str = "–") -> str:
    """``mean ± std``, ``mean [low–high]`` or ``mean`` to two decimals; ``n/a`` for a missing mean."""
    if _missing(mean) or not np.isfinite(mean):
        return "n/a"
    if isinstance(spread, tuple):
        low, high = spread
        return f"{mean:.2f}" if not np.isfinite(low) else f"{mean:.2f} [{low:.2f}{dash}{high:.2f}]"
    return f"{mean:.2f}" if spread is None or not np.isfinite(spread) else f"{mean:.2f}{pm}{spread:.2f}"


def cell_text(column: Column, cell: Cell, labels: dict[str, str] | None = None) -> str:
    """A cell as plain text (Markdown and HTML draw the bold themselves)."""
    if column.format == "mean_std" and not isinstance(cell.value, str):
        return mean_text(cell.value, cell.spread)
    return value_text(column, cell.value, labels)


# -- Markdown ---------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    """A pipe inside a cell (a label such as 'A | B') would end the cell."""
    return text.replace("|", "\\|")


def markdown(view: View) -> str:
    """Markdown: the bold title line, one pipe table per block (a block's heading joins the first header
    cell), then the notes as paragraphs."""
    columns = view.table.page_columns
    lines = [f"**{view.title}.**", ""]
    for block in view.blocks:
        headings = [c.heading for c in columns]
        if block.heading:
            headings[0] = f"{headings[0]} ({block.heading})"
        lines.append("| " + " | ".join(_md_escape(h) for h in headings) + " |")
        lines.append("|" + "".join("---:|" if c.numeric else "---|" for c in columns))
        for row in block.rows:
            cells = []
            for column, cell in _page(view.table, row):
                text = _md_escape(cell_text(column, cell, view.labels))
                cells.append((f"**{text}**" if cell.bold else text) + cell.mark)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if not view.blocks or not any(b.rows for b in view.blocks):
        lines = [f"**{view.title}.**", "", view.empty_note, ""]
    for note in view.notes:
        lines += [note, ""]
    return "\n".join(lines)


# -- LaTeX ------------------------------------------------------------------------------------------------
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX special characters of plain text (configuration names such as ``rnr_mask30``)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


#: Formulas of the notes (after escaping) and their math-mode form.
_TEX_MATH = (
    (r"|φ(x) − φ\_true(x)|", r"$|\varphi(x) - \varphi_{\mathrm{true}}(x)|$"),
    ("α = ", r"$\alpha$ = "),
    # Text-mode < and > print as ¡ and ¿ in LaTeX's default font encoding.
    (" > ", r" $>$ "),
    (" < ", r" $<$ "),
)


def heading_lines(text: str, longest: int = 10) -> list[str]:
    """A column heading broken at the space nearest its middle when longer than ``longest`` characters (a
    label such as 'RNR, T00/T50 only' would otherwise set the width of its column of numbers)."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if len(text) <= longest or not spaces:
        return [text]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [text[:cut], *heading_lines(text[cut + 1 :], longest)]


def _tex_heading(text: str) -> str:
    """A configuration's heading; the reference's '(ref.)' on a line of its own, under the label."""
    label, ref = (
        (text.removesuffix(REFERENCE_MARK), [REFERENCE_MARK.strip()]) if text.endswith(REFERENCE_MARK) else (text, [])
    )
    lines = [tex_escape(line) for line in [*heading_lines(label), *ref]]
    return lines[0] if len(lines) == 1 else r"\begin{tabular}[b]{@{}c@{}}" + r" \\ ".join(lines) + r"\end{tabular}"


def tex_text(text: str) -> str:
    """A note, title or heading in LaTeX: escaped, inline code and bold markup dropped, symbols as math."""
    text = tex_escape(text.replace("`", "").replace("**", ""))
    # Maths in math mode: the formulas the notes spell out first, then single symbols.
    for phrase, tex in _TEX_MATH:
        text = text.replace(phrase, tex)
    for symbol, tex in (("±", r"$\pm$"), ("α", r"$\alpha$"), ("≤", r"$\le$"), ("–", "--"), ("φ", r"$\varphi$")):
        text = text.replace(symbol, tex)
    for mark, tex in LATEX_MARKS.items():
        text = text.replace(mark, tex)
    # A percentage stays on one line with its number ('95 %' must not break before the sign).
    return text.replace("index x spacing", r"index $\times$ spacing").replace(r" \%", r"\,\%")


def _tex_marks(mark: str) -> str:
    return "".join(LATEX_MARKS.get(ch, ch) for ch in mark)


def _latex_cell(column: Column, cell: Cell, labels: dict[str, str], first: bool = False) -> str:
    """A ``mean_std`` cell spans two aligned columns ``mean & spread``: the mean right-aligned, '± std'
    left-aligned, so the decimal points line up down each configuration (all values carry two decimals). The
    first column (row labels such as ``mean``) starts with a capital."""
    if column.format != "mean_std":
        text = tex_escape(cell_text(column, cell, labels))
        text = text[:1].upper() + text[1:] if first else text
        return (rf"\textbf{{{text}}}" if cell.bold else text) + _tex_marks(cell.mark)
    mean, spread = cell.value, cell.spread
    if isinstance(mean, str):
        return rf"\multicolumn{{2}}{{c}}{{{tex_escape(mean)}}}"
    if _missing(mean) or not np.isfinite(mean):
        return r"\multicolumn{2}{c}{n/a}"
    rest = "" if spread is None or isinstance(spread, tuple) or not np.isfinite(spread) else rf"$\pm$\,{spread:.2f}"
    left, right = f"{mean:.2f}", rest
    if cell.bold:
        left = rf"\textbf{{{left}}}"  # the mean only: a bold '± std' would widen every column
    return f"{left} & {right}{_tex_marks(cell.mark)}"


def _interval_cell(column: Column, cell: Cell) -> str:
    """``[low--high]`` in small type across a ``mean_std`` column's two columns (empty without an interval)."""
    span = 2 if column.format == "mean_std" else 1
    interval = cell.spread if isinstance(cell.spread, tuple) else None
    if interval is None or not np.isfinite(interval[0]):
        return rf"\multicolumn{{{span}}}{{c}}{{}}"
    return rf"\multicolumn{{{span}}}{{c}}{{\footnotesize [{interval[0]:.2f}--{interval[1]:.2f}]}}"


def latex(view: View) -> str:
    """A booktabs table for a thesis: ``\\caption[title]{title.}`` (the short form for the List of Tables),
    two decimal-aligned columns per ``mean_std`` column, headings from the display labels, and the notes as a
    footnote-size paragraph under the table instead of in the caption. Intervals of a summary row go on a
    line of their own (in the cell they would widen every column)."""
    columns = view.table.page_columns
    title = tex_text(view.title)
    # The first column holds row labels (case numbers, 'Mean'): left-aligned.
    spec = "l" + "".join(r"r@{\,}l" if c.format == "mean_std" else ("r" if c.numeric else "l") for c in columns[1:])
    width = sum(2 if c.format == "mean_std" else 1 for c in columns)
    head = []
    for c in columns:
        if c.format == "mean_std":
            head.append(rf"\multicolumn{{2}}{{c}}{{{_tex_heading(c.heading)}}}")
        else:
            head.append(tex_escape(c.heading[:1].upper() + c.heading[1:]))
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption[{title}]{{{title}.}}",
        *([rf"\label{{{view.latex_label}}}"] if view.latex_label else []),
        # Footnote-size type, narrow column gaps (both local to the table) and headings broken over lines:
        # 'initial' and four configurations of 'mean ± std' then fit the text width of a default A4 article at
        # 10, 11 and 12 pt (tests/test_tables.py compiles them and fails on any overfull box).
        r"\footnotesize",
        r"\setlength{\tabcolsep}{2pt}",
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        " & ".join(head) + r" \\",
    ]
    for block in view.blocks:
        lines.append(r"\midrule")
        text = block.latex_heading or block.heading
        if text:
            heading = tex_text(text[:1].upper() + text[1:])
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\emph{{{heading}}}}} \\")
        summary_only = block.latex_heading is not None and block.summary_rows > 0
        rows = block.rows[len(block.rows) - block.summary_rows :] if summary_only else block.rows
        for i, row in enumerate(rows):
            if block.summary_rows and not summary_only and i == len(rows) - block.summary_rows:
                lines.append(r"\midrule")
            pairs = _page(view.table, row)
            cells = [_latex_cell(c, cell, view.labels, i == 0) for i, (c, cell) in enumerate(pairs)]
            lines.append(" & ".join(cells) + r" \\")
            if any(isinstance(cell.spread, tuple) for cell in row):
                first = r"95\,\% CI"  # the notes define it: the 95 % bootstrap interval over cases
                rest = [_interval_cell(c, cell) for c, cell in pairs[1:]]
                lines.append(" & ".join([first, *rest]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if view.notes:
        # Ragged right: long setting names cannot stretch a justified line past the text width.
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize\raggedright"]
        lines += [tex_text(n) + r"\par" for n in view.notes]
        lines += [r"\end{minipage}"]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------------------------
_HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; color: #1f2933;
       background: #fff; margin: 1.5em; max-width: 80em; line-height: 1.45; }
h1 { font-size: 1.3em; margin: 0 0 0.6em 0; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #d5dbe1; padding: 0.3em 0.8em; white-space: nowrap; }
/* A table wider than the report's pane scrolls inside its own box; the page around it keeps the pane's width. */
div.scroll { overflow-x: auto; max-width: 100%; }
th { background: #eef2f6; border-bottom: 2px solid #9aa5b1; }
tbody tr:nth-child(even) { background: #f8fafc; }
td.num, th.num { text-align: right; }
td.text, th.text { text-align: left; }
p { margin: 0.5em 0; }
p.note { font-size: 0.92em; color: #3e4c59; }
code { font-size: 0.95em; background: #eef2f6; padding: 0 0.2em; border-radius: 3px; }
"""
_INLINE_MD = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def inline_html(text: str) -> str:
    """Escape ``text`` and render the Markdown the notes use inline: ``**bold**`` and ```code```."""
    out, pos = [], 0
    for match in _INLINE_MD.finditer(text):
        out.append(escape(text[pos : match.start()]))
        code, bold = match.groups()
        out.append(f"<code>{escape(code)}</code>" if code is not None else f"<strong>{inline_html(bold)}</strong>")
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def html(view: View, page_title: str) -> str:
    """A self-contained HTML page: the title line, one ``<table>`` per block, the notes smaller below."""
    columns = view.table.page_columns
    kinds = ["num" if c.numeric else "text" for c in columns]
    parts = [f"<p><strong>{inline_html(view.title)}.</strong></p>"]
    for block in view.blocks:
        if not block.rows:
            continue
        headings = [c.heading for c in columns]
        if block.heading:
            headings[0] = f"{headings[0]} ({block.heading})"
        head = "".join(f'<th class="{k}">{escape(h)}</th>' for h, k in zip(headings, kinds, strict=True))
        rows = []
        for row in block.rows:
            cells = []
            for (column, cell), kind in zip(_page(view.table, row), kinds, strict=True):
                text = escape(cell_text(column, cell, view.labels))
                text = (f"<strong>{text}</strong>" if cell.bold else text) + escape(cell.mark)
                cells.append(f'<td class="{kind}">{text}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        table = f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
        parts.append(f'<div class="scroll">\n{table}\n</div>')
    if not any(b.rows for b in view.blocks):
        parts.append(f'<p class="note">{inline_html(view.empty_note)}</p>')
    parts += [f'<p class="note">{inline_html(note)}</p>' for note in view.notes]
    return html_page(page_title, "\n".join(parts))


# -- CSV --------------------------------------------------------------------------------------------------
def check_columns(table: Table, frame: pd.DataFrame) -> None:
    """The frame's columns must be the table's, in its order (open tables: its columns among others)."""
    names = list(table.names)
    present = [c for c in frame.columns if c in names]
    if present != names or (not table.open_columns and list(frame.columns) != names):
        raise ValueError(f"{table.file('csv')}: expected the columns {names}, found {list(frame.columns)}")


def csv(table: Table, frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as the table's CSV (every number unrounded), after checking its columns."""
    check_columns(table, frame)
    write_csv(path, frame)


def frame_view(
    table: Table, frame: pd.DataFrame, title: str, notes: list[str], labels: dict[str, str], keep: tuple[str, ...] = ()
) -> View:
    """A CSV table as a view for a page: every row, the table's columns where it names them, the others
    (settings of configurations.csv) as plain columns. A column with the same value in every row (of two or
    more; ``keep`` excepted) is stated once in a note above the others instead of repeated on each row: the
    page stays narrow enough for the report's pane."""
    known = {c.name: c for c in table.columns}
    columns = [known.get(name, Column(name)) for name in frame.columns]
    constant = [
        i
        for i, c in enumerate(columns)
        if len(frame) > 1 and c.name not in keep and frame.iloc[:, i].astype(str).nunique(dropna=False) == 1
    ]
    shown = [i for i in range(len(columns)) if i not in constant]
    # A column empty in every row says nothing: left out without a word.
    same = [
        f"{columns[i].heading} = {value_text(columns[i], frame.iloc[0, i], labels)}"
        for i in constant
        if not _missing(frame.iloc[0, i]) and str(frame.iloc[0, i]) != ""
    ]
    notes = ([f"Every row has: {'; '.join(same)}."] if same else []) + notes
    rows = [[Cell(row[i]) for i in shown] for row in frame.itertuples(index=False)]
    return View(with_columns(table, tuple(columns[i] for i in shown)), title, [Block(rows)], notes, labels)
