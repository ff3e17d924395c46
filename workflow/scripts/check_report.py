"""Check a Snakemake HTML report of this workflow in a real headless browser (Chromium).

    python workflow/scripts/check_report.py results/report.html --tables results/phantom/tables --out /tmp/report-check

The report is a JavaScript app (React) without URLs for its pages, so the script opens it three ways, each with
``chromium --headless --dump-dom`` (the DOM after the scripts ran) and ``--screenshot``:

1. the report as it is: the landing page must render (the app draws its menu, with the categories
   "Tables" and "Figures");
2. a copy with a few lines of script appended that open the category "Tables" and show the table labelled
   "TRE per case", as a click would: the list must show the labelled tables and the content pane the HTML
   page of ``tre.html`` in its iframe; likewise the slice panels of the first registered configuration (the
   list must run through the cases in numeric order: 1, 2, ..., 10) and the runtime statistics view
   (screenshot only);
3. the page that iframe shows (decoded from the report), in the browser on its own: its table must hold,
   for every case and configuration, the mean TRE of ``tre.csv`` (two decimals).

It also reads the report's runtime data: every job's runtime must be > 0 (the chart has a log scale, which
draws nothing when one value is not). The wide table pages (paired tests, configurations) are opened in the
report (paired_tests.png, configurations.png) and on their own at the width of the report's content pane: they
must not be wider than it (paired_tests_page.png, configurations_page.png). Screenshots in --out: landing.png,
tables.png, tre_page.png, panels.png, stats.png and those four.
Exit status 0 when every check passes, 1 otherwise (each failure printed), 2 without a Chromium.
Chromium: the first of $CHROMIUM, chromium, chromium-browser, google-chrome on PATH (Debian: apt-get install
chromium). Run as root it needs --no-sandbox, which the script adds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = "1600,1000"
#: The label of the table page the check opens (rnr.reporting.table_specs.HTML_TABLES["tre_html"]).
TRE_LABEL = "TRE per case"
#: The wide pages (rnr.reporting.table_specs.HTML_TABLES), which must fit the report's content pane: at
#: PANE_WIDTH px the page itself must not scroll sideways (a wide table scrolls inside its own box).
WIDE_LABELS = {"Paired tests": "paired_tests", "Configurations": "configurations"}
PANE_WIDTH = 1000
#: Appended to a table page on its own: records whether the page is wider than the window.
MEASURE = """
<script>
document.body.setAttribute("data-overflow", String(document.documentElement.scrollWidth > window.innerWidth));
</script>
"""

# Appended to a copy of the report: after the app has drawn, open a category and a result as a click would.
# `app`, `results` and `categories` are the report's own globals.
NAVIGATE = """
<script>
setTimeout(function () {
  var path = Object.keys(results).find(function (p) {
    return results[p].labels && results[p].labels["table"] === LABEL;
  });
  app.showCategory("Tables");
  if (path !== undefined) {
    // a second step: setView reads the state the first one sets
    setTimeout(function () {
      app.setView({content: "html", contentPath: results[path].data_uri, resultPath: path});
    }, 500);
  }
}, 500);
</script>
"""
# The slice panels of the first registered configuration (a subcategory), each with the first image shown.
SHOW_PANELS = """
<script>
setTimeout(function () {
  var names = Object.keys(categories["Slice panels"] || {});
  var name = names.find(function (n) { return n !== "initial"; }) || names[0];
  var paths = categories["Slice panels"][name];
  app.setView({navbarMode: "subcategory", category: "Slice panels", subcategory: name});
  setTimeout(function () {
    app.setView({content: "img", contentPath: results[paths[0]].data_uri, resultPath: paths[0]});
  }, 500);
}, 500);
</script>
"""
SHOW_STATS = """
<script>
setTimeout(function () { app.setView({content: "stats"}); }, 500);
</script>
"""


def find_browser() -> str | None:
    candidates = [os.environ.get("CHROMIUM", ""), *BROWSERS]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def browse(browser: str, page: Path, screenshot: Path | None = None, window: str = WINDOW) -> str:
    """The DOM of ``page`` after its scripts ran (``--dump-dom``); with ``screenshot``, also a PNG of it.
    ``window``: the window size, ``width,height`` in px."""
    with tempfile.TemporaryDirectory(prefix="rnr-chromium-") as profile:
        base = [
            browser,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={window}",
            "--virtual-time-budget=10000",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            base.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        url = page.resolve().as_uri()
        # One launch does both (headless Chromium writes the screenshot and prints the DOM in the same run):
        # each launch loads the whole report, seconds per page.
        shot = [f"--screenshot={screenshot}"] if screenshot is not None else []
        done = subprocess.run(
            [*base, *shot, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True
        )
    if screenshot is not None and not screenshot.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot {screenshot} of {page}")
    return done.stdout


def with_script(report: Path, script: str, out: Path) -> Path:
    """A copy of ``report`` with ``script`` before its closing body tag (the last one: the bundled scripts
    hold the string too)."""
    html = report.read_text(errors="replace")
    head, tag, tail = html.rpartition("</body>")
    out.write_text(head + script + tag + tail if tag else html + script)
    return out


class Cells(HTMLParser):
    """Rows of cell texts of every table of a page, and its iframes' src."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.iframes: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "iframe":
            self.iframes.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(dom: str) -> Cells:
    cells = Cells()
    cells.feed(dom)
    return cells


def decode_data_uri(uri: str) -> str:
    head, _, data = uri.partition(",")
    return base64.b64decode(data).decode() if head.endswith(";base64") else unquote(data)


def runtimes(report: Path) -> list[dict]:
    match = re.search(r"var runtimes_spec = (\{.*?\});\s*</script>", report.read_text(errors="replace"), re.S)
    return json.loads(match.group(1))["data"]["values"] if match else []


def check(report: Path, tables: Path, out: Path, browser: str) -> list[str]:
    """Every check; returns the failures (empty when all pass). Screenshots go to ``out``; the navigating
    copies of the report (each as large as the report) to a temporary folder that is removed."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnr-report-copies-") as copies:
        return _check(report, tables, out, Path(copies), browser)


def _check(report: Path, tables: Path, out: Path, copies: Path, browser: str) -> list[str]:
    failures = []

    landing = browse(browser, report, out / "landing.png")
    if 'id="app"' not in landing or "Tables" not in landing or "Figures" not in landing:
        failures.append("landing page: the app did not draw its menu with the categories Tables and Figures")

    navigated = with_script(report, NAVIGATE.replace("LABEL", json.dumps(TRE_LABEL)), copies / "report_tables.html")
    page = parse(browse(browser, navigated, out / "tables.png"))
    listed = {cell for row in page.rows for cell in row}
    if TRE_LABEL not in listed:
        failures.append(f"category Tables: no result labelled {TRE_LABEL!r} in the list ({sorted(listed)[:20]})")
    shown = [src for src in page.iframes if src.startswith("data:text/html")]
    if not shown:
        failures.append("category Tables: the content pane shows no HTML page (no iframe with a data:text/html URI)")
    else:
        tre_page = out / "tre_page.html"
        tre_page.write_text(decode_data_uri(shown[0]))
        rows = parse(browse(browser, tre_page, out / "tre_page.png")).rows
        failures += compare_tre(rows, pd.read_csv(tables / "tre.csv"))

    for label, name in WIDE_LABELS.items():
        failures += check_wide_page(report, label, name, out, copies, browser)

    panels = parse(browse(browser, with_script(report, SHOW_PANELS, copies / "report_panels.html"), out / "panels.png"))
    failures += check_case_order(panels.rows)

    with_script(report, SHOW_STATS, copies / "report_stats.html")
    browse(browser, copies / "report_stats.html", out / "stats.png")
    values = runtimes(report)
    bad = [v for v in values if not v["runtime"] > 0]
    if not values or bad:
        failures.append(f"runtime chart: {len(bad)} of {len(values)} job runtimes are not > 0 (log scale): {bad[:5]}")
    return failures


def check_wide_page(report: Path, label: str, name: str, out: Path, copies: Path, browser: str) -> list[str]:
    """Open the table page labelled ``label`` in the report (screenshot ``<name>.png``), then that page on its
    own at the pane's width (``<name>_page.png``): it must not be wider than the window."""
    navigated = with_script(report, NAVIGATE.replace("LABEL", json.dumps(label)), copies / f"report_{name}.html")
    shown = [src for src in parse(browse(browser, navigated, out / f"{name}.png")).iframes if src.startswith("data:")]
    if not shown:
        return [f"category Tables: the page {label!r} is not shown"]
    page = out / f"{name}_page.html"
    page.write_text(decode_data_uri(shown[0]).replace("</body>", MEASURE + "</body>"))
    dom = browse(browser, page, out / f"{name}_page.png", window=f"{PANE_WIDTH},900")
    if 'data-overflow="false"' not in dom:
        return [f"page {label!r}: wider than a {PANE_WIDTH}-px pane (the page scrolls sideways, not its table)"]
    return []


def check_case_order(rows: list[list[str]]) -> list[str]:
    """The list of slice panels: its rows (case, seed, figure, ...) must run through the cases in numeric order."""
    cases = [row[0] for row in rows if row and row[0].isdigit()]
    if not cases:
        return [f"Slice panels: no rows with a case label ({rows[:3]})"]
    if [int(c) for c in cases] != sorted(int(c) for c in cases):
        return [f"Slice panels: cases not in numeric order: {list(dict.fromkeys(cases))}"]
    return []


def compare_tre(rows: list[list[str]], tre: pd.DataFrame) -> list[str]:
    """The table page's cells against tre.csv: the cell of each case x configuration starts with its mean TRE. A
    configuration's column is headed by its display label (tre.csv's ``label``)."""
    if not rows or rows[0][:1] != ["case"]:
        return [f"TRE page: no table with a 'case' column ({rows[:1]})"]
    header, body = rows[0], {row[0]: row for row in rows[1:] if row}
    failures = []
    for r in tre.itertuples(index=False):
        row = body.get(str(r.case))
        label = getattr(r, "label", r.configuration)
        # The reference of the paired tests is headed '<label> (ref.)' (rnr.reporting.table_marks.REFERENCE_MARK).
        heading = next((h for h in header if h in (label, f"{label} (ref.)")), label)
        if row is None or heading not in header:
            failures.append(f"TRE page: no cell for case {r.case}, {r.configuration} (column {heading!r})")
            continue
        cell = row[header.index(heading)]
        if not cell.startswith(f"{r.tre_mean_mm:.2f} ± {r.tre_std_mm:.2f}"):
            failures.append(f"TRE page: case {r.case}, {r.configuration} shows {cell!r}, tre.csv {r.tre_mean_mm:.2f}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the report, e.g. results/report.html")
    parser.add_argument("--tables", type=Path, required=True, help="the tables folder, e.g. results/phantom/tables")
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots and pages")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (set CHROMIUM or install chromium)", file=sys.stderr)
        return 2
    failures = check(args.report, args.tables, args.out, browser)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if not failures:
        print(f"report OK; screenshots in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
