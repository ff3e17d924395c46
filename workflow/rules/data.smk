# Data: the phantom dataset (generated once) or the user's folder of a dataset (rnr.data.DATASETS) ->
# converted case folders.


rule phantom:
    output:
        directory(PLAN.source_output()),
    params:
        cases=" ".join(str(c) for c in PLAN.cases),
        seed=PLAN.phantom_seed,
        scale=PLAN.phantom_scale,
        layout=PLAN.dataset.phantom_layout,
    log:
        PLAN.log("phantom"),
    # Every later job waits for the phantom: two cases at a time. A fixed count, not workflow.cores: that is
    # undefined for a cluster executor (SLURM), and locally Snakemake caps threads at --cores anyway.
    threads: 2
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr phantom {output} --cases {params.cases} --seed {params.seed} --scale {params.scale} "
        "--layout {params.layout} --jobs {threads} > {log} 2>&1"


rule convert:
    input:
        # A generated dataset is a rule output; the user's folder is not tracked by time stamp.
        lambda w: rules.phantom.output if PLAN.dataset.generated else [],
    output:
        case_json=PLAN.case_file(layout.CASE_JSON),
        t00=PLAN.case_file(layout.image_name("T00")),
        t50=PLAN.case_file(layout.image_name("T50")),
        landmarks_t00=PLAN.case_file(layout.landmarks_name("T00")),
        landmarks_t50=PLAN.case_file(layout.landmarks_name("T50")),
    params:
        dataset=PLAN.dataset.name,
        source=lambda w, input: PLAN.source_dir or input[0],
        out=lambda w, output: Path(output.case_json).parent,
    log:
        PLAN.log("convert", "case{case}"),
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr convert --dataset {params.dataset} --source {params.source} --case {wildcards.case} --out {params.out}"
        " > {log} 2>&1"
