# Segmentation: the T00 lung mask of each case (lungmask, provided, or threshold; see the config schema).


rule segment:
    input:
        case_json=f"{RESULTS}/data/case{{case}}/case.json",
        t00=f"{RESULTS}/data/case{{case}}/T00.nii.gz",
    output:
        f"{RESULTS}/data/case{{case}}/mask_T00.nii.gz",
    params:
        method=config["masks"]["method"],
        weights=f"--weights {config['masks']['weights']}" if config["masks"].get("weights") else "",
        case_dir=lambda w, input: Path(input.case_json).parent,
    log:
        f"{RESULTS}/logs/segment/case{{case}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr segment --case-dir {params.case_dir} --method {params.method} {params.weights} --out {output}"
        " > {log} 2>&1"
