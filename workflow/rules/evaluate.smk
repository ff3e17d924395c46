# Evaluation: TRE, folding and slice panels per case x configuration; `initial` is the identity map.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=PLAN.run_file(layout.METRICS_JSON),
        figures=report(
            directory(PLAN.run_file(layout.FIGURES_DIR)),
            patterns=["{name}.png"],
            caption="../report/case_figures.rst",
            category="Slice panels",
            # the configuration's display label (its name where it has none)
            subcategory=configuration_label,
            # case and seed zero-padded, so that the report lists case 2 before case 10
            labels=case_figure_labels,
        ),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, output: Path(output.metrics).parent,
        identity=lambda w: "--identity" if w.configuration == INITIAL else "",
        # the configuration's display label for the figures' titles (its name where it has none)
        label=configuration_label,
    log:
        PLAN.log("evaluate", "{configuration}/case{case}/seed{seed}"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr evaluate --case-dir {params.case_dir} --run-dir {params.run_dir} --mask {input.mask} {params.identity}"
        " --label {params.label:q} > {log} 2>&1"
