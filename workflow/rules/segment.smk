# Segmentation: the T00 lung mask of each case (lungmask, provided, or threshold; see config/README.md).


rule segment:
    input:
        case_json=rules.convert.output.case_json,
        t00=rules.convert.output.t00,
    output:
        PLAN.case_file(layout.MASK_T00),
    params:
        method=PLAN.masks_method,
        weights=f"--weights {PLAN.masks_weights}" if PLAN.masks_weights else "",
        case_dir=lambda w, input: Path(input.case_json).parent,
    log:
        PLAN.log("segment", "case{case}"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr segment --case-dir {params.case_dir} --method {params.method} {params.weights} --out {output}"
        " > {log} 2>&1"
