"""The `settings` rule: write one configuration's registration settings as YAML (`rnr register --settings`
reads it) and a one-line log.

A script, not a `run:` block: Snakemake runs a local `run:` job in a second Snakemake process that removes the
job's start record when it ends, so the main process stamped the end as the start and the report's runtime
chart got a negative runtime, which its log scale cannot draw.
"""

import yaml

from rnr.io import write_text

settings = dict(snakemake.params.settings)  # noqa: F821 (set by Snakemake)
write_text(snakemake.output[0], yaml.safe_dump(settings, sort_keys=True))  # noqa: F821
write_text(snakemake.log[0], f"settings {settings} -> {snakemake.output[0]}\n")  # noqa: F821
