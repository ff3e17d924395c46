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
    # Every later job waits for the phantom: it may use all cores (one case per core).
    threads: workflow.cores
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr phantom {output} --cases {params.cases} --seed {params.seed} --scale {params.scale} "
        "--jobs {threads} > {log} 2>&1"


rule convert:
    input:
        # The phantom is a rule output; a DIR-Lab folder is the user's and is not tracked by time stamp.
        lambda w: rules.phantom.output if DATASET == "phantom" else [],
    output:
        case_json=case_file(layout.CASE_JSON),
        t00=case_file(layout.image_name("T00")),
        t50=case_file(layout.image_name("T50")),
        landmarks_t00=case_file(layout.landmarks_name("T00")),
        landmarks_t50=case_file(layout.landmarks_name("T50")),
    params:
        source=dirlab_source,
        out=lambda w, output: Path(output.case_json).parent,
    log:
        f"{RESULTS}/logs/convert/case{{case}}.log",
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr convert --dirlab-dir {params.source} --case {wildcards.case} --out {params.out} > {log} 2>&1"
