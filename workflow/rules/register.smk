# Registration: one fitted map per case x configuration (GPU when use_gpu is true).


rule settings:
    output:
        PLAN.settings_file(),
    params:
        # A params change (edited configuration) makes Snakemake rewrite the file and rerun its registrations.
        settings=lambda w: dict(PLAN.configuration(w.configuration).settings),
    log:
        PLAN.log("settings", "{configuration}"),
    conda:
        "../envs/rnr.yaml"
    script:
        # Not a run: block, whose start time Snakemake loses (the script says how).
        "../scripts/write_settings.py"


rule register:
    input:
        unpack(lambda w: PLAN.field_input(w.configuration, w.case)),
        case_json=rules.convert.output.case_json,
        mask=rules.segment.output[0],
        settings=rules.settings.output[0],
    output:
        # Written in this order by rnr.fitting.rundir, the checkpoint last.
        loss=PLAN.run_file(layout.LOSS_CSV),
        landmarks=PLAN.run_file(layout.WARPED_LANDMARKS),
        run_json=PLAN.run_file(layout.RUN_JSON),
        checkpoint=PLAN.run_file(layout.CHECKPOINT),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, output: Path(output.checkpoint).parent,
        device=PLAN.device,
        use_gpu=PLAN.use_gpu,
    log:
        PLAN.log("register", "{configuration}/case{case}/seed{seed}"),
    benchmark:
        f"{RESULTS}/benchmarks/register/{{configuration}}/case{{case}}/seed{{seed}}.tsv"
    threads: PLAN.register_threads
    resources:
        # The SLURM executor turns gpu=1 into --gpus=1; locally, --resources gpu=N caps concurrent GPU jobs.
        gpu=1 if PLAN.use_gpu else 0,
    conda:
        "../envs/rnr.yaml"
    shell:
        # Snakemake sets OMP_NUM_THREADS={threads} for the job, which torch follows.
        "(echo 'config use_gpu={params.use_gpu} -> device {params.device} (use_gpu true needs CUDA on the node)';"
        " rnr register --case-dir {params.case_dir} --out {params.run_dir} --mask {input.mask}"
        " --settings {input.settings} --set seed={wildcards.seed} --name {wildcards.configuration} --no-progress)"
        " > {log} 2>&1"
