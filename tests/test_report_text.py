"""rnr.reporting.report_text: what the report's info panel prints for a mapping param, and what captions read."""

from rnr.reporting.report_text import ReportText


def test_report_text_reads_as_a_mapping_and_prints_as_a_phrase():
    text = ReportText("each table's caption", {"tre": "TRE per case", "stats": "paired tests"})
    assert text.get("tre") == "TRE per case" and dict(text) == {"tre": "TRE per case", "stats": "paired tests"}
    assert str(text) == "each table's caption" and "TRE per case" not in f"{text}"
