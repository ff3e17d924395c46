# Evaluation: TRE, folding and slice panels per case x configuration; `initial` is the identity map.


def evaluate_inputs(wildcards):
    """The converted case and mask, plus the run's checkpoint and record unless it is `initial`."""
    inputs = {"case_json": case_file(layout.CASE_JSON), "mask": case_file(layout.MASK_T00)}
    if wildcards.configuration != INITIAL:
        inputs["checkpoint"] = run_file(layout.CHECKPOINT)
        inputs["run_json"] = run_file(layout.RUN_JSON)
    return {key: path.format(**wildcards) for key, path in inputs.items()}


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=run_file(layout.METRICS_JSON),
        figures=report(
            directory(run_file(layout.FIGURES_DIR)),
            patterns=["{name}.png"],
            caption="../report/case_figures.rst",
            category="Slice panels",
            subcategory="{configuration}",
            labels={"case": "{case}", "seed": "{seed}", "figure": "{name}"},
        ),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, output: Path(output.metrics).parent,
        identity=lambda w: "--identity" if w.configuration == INITIAL else "",
    log:
        f"{RESULTS}/logs/evaluate/{{configuration}}/case{{case}}/seed{{seed}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr evaluate --case-dir {params.case_dir} --run-dir {params.run_dir} --mask {input.mask} {params.identity}"
        " > {log} 2>&1"
