# Evaluation: TRE, folding and slice panels per case x configuration, and for the identity map `initial`.


rule evaluate:
    input:
        case_json=f"{RESULTS}/data/case{{case}}/case.json",
        mask=f"{RESULTS}/data/case{{case}}/mask_T00.nii.gz",
        checkpoint=f"{RESULTS}/runs/{{configuration}}/case{{case}}/checkpoint.pt",
        run_json=f"{RESULTS}/runs/{{configuration}}/case{{case}}/run.json",
    output:
        metrics=f"{RESULTS}/runs/{{configuration}}/case{{case}}/metrics.json",
        figures=report(
            directory(f"{RESULTS}/runs/{{configuration}}/case{{case}}/figures"),
            patterns=["{name}.png"],
            caption="../report/case_figures.rst",
            category="Slice panels",
            subcategory="{configuration}",
            labels={"case": "{case}", "figure": "{name}"},
        ),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, input: Path(input.checkpoint).parent,
    log:
        f"{RESULTS}/logs/evaluate/{{configuration}}/case{{case}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr evaluate --case-dir {params.case_dir} --run-dir {params.run_dir} --mask {input.mask} > {log} 2>&1"


rule evaluate_initial:
    input:
        case_json=f"{RESULTS}/data/case{{case}}/case.json",
        mask=f"{RESULTS}/data/case{{case}}/mask_T00.nii.gz",
    output:
        metrics=f"{RESULTS}/runs/initial/case{{case}}/metrics.json",
        figures=report(
            directory(f"{RESULTS}/runs/initial/case{{case}}/figures"),
            patterns=["{name}.png"],
            caption="../report/case_figures.rst",
            category="Slice panels",
            subcategory="initial",
            labels={"case": "{case}", "figure": "{name}"},
        ),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, output: Path(output.metrics).parent,
    log:
        f"{RESULTS}/logs/evaluate/initial/case{{case}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr evaluate --case-dir {params.case_dir} --run-dir {params.run_dir} --mask {input.mask} --identity"
        " > {log} 2>&1"
