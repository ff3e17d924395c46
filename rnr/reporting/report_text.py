"""A Snakemake rule param that the HTML report reads as a mapping and names in words.

The report's info panel prints every param of a result with ``str()``; a caption table passed as a plain dict
would be dumped whole beside every result. :class:`ReportText` keeps the mapping for the captions
(``.get(name)``) and prints one phrase instead. Standard library only: the rule files import it when Snakemake
parses them.
"""

from __future__ import annotations

from collections.abc import Mapping


class ReportText(dict):
    """A dict whose ``str()`` is ``what`` (a short phrase naming its content), e.g.
    ``ReportText("each table's caption (rnr.reporting.table_specs)", CAPTIONS)``."""

    def __init__(self, what: str, items: Mapping[str, str]):
        super().__init__(items)
        self.what = what

    def __str__(self) -> str:
        return self.what
