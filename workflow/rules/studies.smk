# Studies: per sweep its ablation table and figure; over every configuration, accuracy against budget.


rule ablation:
    input:
        # Every run, not only the sweep's: the runs folder is read as a whole (rnr.reporting.results checks every
        # configuration in it for completeness), so a sweep's table waits until the others are written.
        PLAN.metrics_files(),
    output:
        PLAN.ablation_outputs(),
    params:
        runs_dir=lambda w, input: runs_dir(input),
        out=lambda w, output: Path(output[0]).parent,
        # The expanded sweep (rnr.methods.sweeps); a changed sweep redraws its table.
        spec=lambda w: shlex.quote(json.dumps(PLAN.sweep(w.sweep).to_dict())),
        labels=table_labels(),
    log:
        PLAN.log("ablation", "{sweep}"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr ablation --runs-dir {params.runs_dir} --out {params.out} --spec {params.spec} {params.labels} > {log} 2>&1"


rule curves:
    input:
        PLAN.metrics_files(),
    output:
        PLAN.curves_outputs(),
    params:
        runs_dir=lambda w, input: runs_dir(input),
        out=lambda w, output: Path(output[0]).parent,
        configurations=" ".join(PLAN.names),
        labels=table_labels(),
    log:
        PLAN.log("curves"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr curves --runs-dir {params.runs_dir} --out {params.out} --configurations {params.configurations}"
        " {params.labels} > {log} 2>&1"
