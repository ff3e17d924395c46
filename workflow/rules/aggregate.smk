# Aggregation: thesis-style tables and figures over all cases x configurations (+ initial).


rule tables:
    input:
        all_metrics(),
    output:
        tre_csv=report(f"{RESULTS}/tables/tre.csv", caption="../report/tre_csv.rst", category="Tables"),
        tre_md=report(f"{RESULTS}/tables/tre.md", caption="../report/tre_table.rst", category="Tables"),
        tre_tex=report(f"{RESULTS}/tables/tre.tex", caption="../report/tre_table.rst", category="Tables"),
        snapped_md=report(
            f"{RESULTS}/tables/tre_snapped.md", caption="../report/tre_snapped.rst", category="Tables"
        ),
        snapped_tex=report(
            f"{RESULTS}/tables/tre_snapped.tex", caption="../report/tre_snapped.rst", category="Tables"
        ),
        folding_csv=report(
            f"{RESULTS}/tables/folding.csv", caption="../report/folding_table.rst", category="Tables"
        ),
        folding_md=report(
            f"{RESULTS}/tables/folding.md", caption="../report/folding_table.rst", category="Tables"
        ),
        landmarks=report(
            f"{RESULTS}/tables/tre_landmarks.csv", caption="../report/tre_landmarks.rst", category="Tables"
        ),
    params:
        # metrics.json lies in runs/<configuration>/case<N>/
        runs_dir=lambda w, input: Path(input[0]).parents[2],
        out=lambda w, output: Path(output.tre_csv).parent,
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join(["initial", *CONFIGURATIONS]),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr tables --runs-dir {params.runs_dir} --out {params.out} --configurations {params.configurations}"
        " > {log} 2>&1"


rule figures:
    input:
        all_metrics(),
    output:
        report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    params:
        runs_dir=lambda w, input: Path(input[0]).parents[2],
        # initial (the identity map) first, then the configured columns; stale runs are left out.
        configurations=" ".join(["initial", *CONFIGURATIONS]),
    log:
        f"{RESULTS}/logs/figures.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr figures --runs-dir {params.runs_dir} --out {output} --configurations {params.configurations}"
        " > {log} 2>&1"
