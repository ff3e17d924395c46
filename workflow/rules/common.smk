# The plan (rnr.plan: config checks, datasets, configurations, seeds, labels, every path) and the thin input
# functions the rule files use. File names come from rnr.layout and rnr.reporting.table_specs only.

import json
import re
import shlex
from pathlib import Path

from rnr import layout
from rnr.plan import make_plan
from rnr.reporting.report_text import ReportText
from rnr.reporting.table_specs import CAPTIONS, HTML_TABLES, TABLES, caption_file

PLAN = make_plan(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
RESULTS = PLAN.results
INITIAL = layout.INITIAL


wildcard_constraints:
    case=r"\d+",
    configuration="|".join(re.escape(c) for c in [INITIAL, *PLAN.names]),
    seed=r"\d+",
    sweep="|".join(re.escape(s.name) for s in PLAN.sweeps) or "(?!)",


def table_captions():
    """rnr.reporting.table_specs.CAPTIONS for the tables' report captions (workflow/report/tables/<name>.rst)."""
    return ReportText("each table's caption (rnr.reporting.table_specs)", CAPTIONS)


def table_labels():
    """` --label NAME=TEXT` arguments of `rnr tables` and `rnr figures` for the configurations that give a `label`."""
    return " ".join(f"--label {shlex.quote(f'{n}={t}')}" for n, t in PLAN.labels().items())


def table_file(key):
    """One table of `rnr tables` (rnr.reporting.table_specs.TABLES)."""
    return str(Path(PLAN.tables_dir()) / TABLES[key])


def table_report(key):
    """One table of rnr.reporting.table_specs.TABLES, flagged for the report: the HTML pages (HTML_TABLES) under "Tables",
    shown inline and labelled in reading order; the other files in a category of their own, to download. The
    caption file shows the table's caption from rnr.reporting.table_specs (the tables rule passes them as a param)."""
    caption = f"../report/{caption_file(key)}"
    if key in HTML_TABLES:
        number = layout.sortable_number(list(HTML_TABLES).index(key) + 1, len(HTML_TABLES))
        labels = {"#": number, "table": HTML_TABLES[key]}
        return report(table_file(key), caption=caption, category="Tables", labels=labels)
    return report(table_file(key), caption=caption, category="Tables (Markdown, LaTeX, CSV)")


def case_figure_labels(wildcards):
    """Report labels of one run figure; case and seed as sortable text (the report sorts labels as text)."""
    largest_seed = max(PLAN.largest_seed(), layout.INITIAL_SEED)
    return {
        "case": layout.sortable_number(wildcards.case, max(PLAN.cases)),
        "seed": layout.sortable_number(wildcards.seed, largest_seed),
        "figure": wildcards.name,
    }


def configuration_label(wildcards):
    """The display label of the run's configuration (its name without one): the report's subcategory."""
    return PLAN.labels().get(wildcards.configuration, wildcards.configuration)


def figure_labels(wildcards):
    """Report labels of one dataset figure: its place in reading order (layout.FIGURE_ORDER; the report sorts
    labels as text) and its name."""
    order = list(layout.FIGURE_ORDER)
    place = order.index(wildcards.name) + 1 if wildcards.name in order else len(order) + 1
    return {"#": layout.sortable_number(place, len(order) + 1), "figure": wildcards.name}


def figure_questions(wildcards):
    """rnr.reporting.plots.QUESTIONS (figures.rst states them); imported when a figures job is planned, not at parse
    time: matplotlib slows an import by ~2 s."""
    from rnr.reporting.plots import QUESTIONS

    return ReportText("each figure's question (rnr.reporting.plots.QUESTIONS)", QUESTIONS)


def evaluate_inputs(wildcards):
    """The converted case and mask, plus the run's checkpoint and record unless it is `initial`."""
    inputs = {"case_json": PLAN.case_file(layout.CASE_JSON), "mask": PLAN.case_file(layout.MASK_T00)}
    if wildcards.configuration != INITIAL:
        inputs["checkpoint"] = PLAN.run_file(layout.CHECKPOINT)
        inputs["run_json"] = PLAN.run_file(layout.RUN_JSON)
    return {key: path.format(**wildcards) for key, path in inputs.items()}


def runs_dir(metrics_paths):
    """results/<dataset>/runs from the metrics.json paths (runs/<configuration>/case<N>/seed<S>/metrics.json)."""
    return Path(metrics_paths[0]).parents[3]
