# Data: the phantom dataset (generated once) or the user's DIR-Lab folder -> converted case folders.


rule phantom:
    output:
        directory(f"{RESULTS}/source"),
    params:
        cases=" ".join(str(c) for c in CASES),
        seed=config["phantom"]["seed"],
        scale=config["phantom"]["scale"],
    log:
        f"{RESULTS}/logs/phantom.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr phantom {output} --cases {params.cases} --seed {params.seed} --scale {params.scale} > {log} 2>&1"


rule convert:
    input:
        # The phantom is a rule output; a DIR-Lab folder is the user's and is not tracked by time stamp.
        lambda w: [f"{RESULTS}/source"] if DATASET == "phantom" else [],
    output:
        case_json=f"{RESULTS}/data/case{{case}}/case.json",
        t00=f"{RESULTS}/data/case{{case}}/T00.nii.gz",
        t50=f"{RESULTS}/data/case{{case}}/T50.nii.gz",
        landmarks_t00=f"{RESULTS}/data/case{{case}}/landmarks_T00.csv",
        landmarks_t50=f"{RESULTS}/data/case{{case}}/landmarks_T50.csv",
    params:
        source=dirlab_source,
        out=lambda w, output: Path(output.case_json).parent,
    log:
        f"{RESULTS}/logs/convert/case{{case}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr convert --dirlab-dir {params.source} --case {wildcards.case} --out {params.out} > {log} 2>&1"
