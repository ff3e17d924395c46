# Aggregation: thesis-style tables and figures over all cases x configurations (+ initial).


rule tables:
    input:
        PLAN.metrics_files(),
    output:
        # The HTML pages show inline in the report (category Tables), the other files are downloads.
        [table_report(key) for key in TABLES],
    params:
        runs_dir=lambda w, input: runs_dir(input),
        out=lambda w, output: Path(output[0]).parent,
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join([INITIAL, *PLAN.names]),
        compare_to=PLAN.compare_to,
        dataset=PLAN.dataset.name,
        labels=table_labels(),
        # The report captions of the tables (rnr.reporting.table_specs), shown by workflow/report/tables/<name>.rst.
        captions=table_captions(),
    log:
        PLAN.log("tables"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr tables --runs-dir {params.runs_dir} --out {params.out} --configurations {params.configurations}"
        " --compare-to {params.compare_to} --dataset {params.dataset} {params.labels} > {log} 2>&1"


rule figures:
    input:
        PLAN.metrics_files(),
    output:
        report(
            directory(PLAN.figures_dir()),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels=figure_labels,
        ),
    params:
        # For the report captions (figures.rst); a changed question redraws the figures, which is cheap.
        questions=figure_questions,
        runs_dir=lambda w, input: runs_dir(input),
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join([INITIAL, *PLAN.names]),
        compare_to=PLAN.compare_to,
        labels=table_labels(),
    log:
        PLAN.log("figures"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr figures --runs-dir {params.runs_dir} --out {output} --configurations {params.configurations}"
        " --compare-to {params.compare_to} {params.labels} > {log} 2>&1"
