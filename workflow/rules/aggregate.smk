# Aggregation: thesis-style tables and figures over all cases x configurations (+ initial).

# Report caption of each table of rnr.tables.TABLES (by key; the file names live in rnr.tables only).
TABLE_CAPTIONS = {
    "tre_csv": "tre_csv.rst",
    "tre_md": "tre_table.rst",
    "tre_tex": "tre_table.rst",
    "tre_snapped_md": "tre_snapped.rst",
    "tre_snapped_tex": "tre_snapped.rst",
    "folding_csv": "folding_table.rst",
    "folding_md": "folding_table.rst",
    "tre_landmarks_csv": "tre_landmarks.rst",
    "stats_csv": "stats.rst",
    "configurations_csv": "configurations.rst",
    "tre_exact_md": "tre_exact.rst",
    "tre_exact_tex": "tre_exact.rst",
}


rule tables:
    input:
        all_metrics(),
    output:
        [
            report(table_file(key), caption=f"../report/{TABLE_CAPTIONS[key]}", category="Tables")
            for key in TABLES
        ],
    params:
        runs_dir=lambda w, input: runs_dir(input),
        out=lambda w, output: Path(output[0]).parent,
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join([INITIAL, *CONFIGURATIONS]),
        compare_to=COMPARE_TO,
        labels=table_labels(),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr tables --runs-dir {params.runs_dir} --out {params.out} --configurations {params.configurations}"
        " --compare-to {params.compare_to} {params.labels} > {log} 2>&1"


rule figures:
    input:
        all_metrics(),
    output:
        report(
            directory(str(layout.figures_dir(RESULTS_ROOT, DATASET))),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        runs_dir=lambda w, input: runs_dir(input),
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join([INITIAL, *CONFIGURATIONS]),
        compare_to=COMPARE_TO,
    log:
        f"{RESULTS}/logs/figures.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr figures --runs-dir {params.runs_dir} --out {output} --configurations {params.configurations}"
        " --compare-to {params.compare_to} > {log} 2>&1"
