# RNR lung 4DCT benchmark: convert -> segment -> register (case x configuration) -> evaluate -> tables.
#
#   snakemake --cores 4 all                                  # phantom, config/config.yaml
#   snakemake --cores 4 all --configfile config/dirlab.yaml --config dirlab_dir=/data/dirlab
#   snakemake --report results/report.html                  # HTML report of every table and figure
#
# Every step is one `rnr` subcommand (rnr --help); the rules only wire files together.
# Configuration: config/config.yaml, validated by workflow/schemas/config.schema.yaml; files given with
# --configfile (and --config key=value) merge over it.
#
# Results layout (<dataset> = config `dataset`: phantom or dirlab; results/README.md has every file and column):
#
# results/<dataset>/
#   source/                           phantom only: the generated dataset in DIR-Lab layout (rnr phantom)
#   data/case<N>/                     converted case (rnr convert): T00..T50.nii.gz (HU), landmarks_*.csv,
#                                     case.json, mask_provided.nii.gz, truth.npz (phantom: the exact motion)
#     mask_T00.nii.gz, mask_T00.json  the T00 lung mask used by registration and evaluation, its figures
#   settings/<configuration>.yaml     registration settings of one configuration (written from the config)
#   runs/<configuration>/case<N>/seed<S>/   one registration (rnr register) and its evaluation (rnr evaluate):
#     checkpoint.pt, loss.csv, landmarks_T00_warped.csv, run.json, metrics.json, figures/*.png
#   runs/initial/case<N>/seed0/       the identity map ("before registration"): metrics.json, figures/
#   tables/                           tre.csv/.md/.tex/.html, tre_exact, tre_snapped, folding, stats.csv,
#                                     configurations.csv, tre_landmarks.csv (rnr tables)
#   figures/                          figures over all cases and configurations (rnr figures)
#   ablation/<sweep>/                 per sweep: ablation.csv/.md/.tex/.html, ablation.png/.pdf (rnr ablation)
#   curves/                           accuracy against budget: budget.*, curve_points.csv, curves.png (rnr curves)
#   logs/<rule>/...                   one log per job
#   benchmarks/register/<configuration>/case<N>/seed<S>.tsv   Snakemake's time / memory record per registration
#   export/<configuration>/case<N>/seed<S>/   opt-in target `export` (rnr export): field.nii.gz (ITK
#                                     displacement field), field_step<n>.nii.gz, warped_*.nii.gz, detj.nii.gz

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/studies.smk"


localrules:
    all,
    settings,
    tables,
    figures,
    ablation,
    curves,
    export,


rule all:
    input:
        PLAN.metrics_files(),
        rules.tables.output,
        rules.figures.output,
        rules.curves.output,
        PLAN.ablation_files(),
    default_target: True
