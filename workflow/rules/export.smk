# Opt-in: every run's fitted map as NIfTI files a viewer or another tool reads (rnr export), into
# results/<dataset>/export/<configuration>/case<N>/seed<S>/. Not part of `all` (a full-size DIR-Lab field is about
# 400 MB before compression): `snakemake --cores 4 export`.
# Paths: export_file in common.smk.


rule export_run:
    input:
        case_json=case_file(layout.CASE_JSON),
        checkpoint=run_file(layout.CHECKPOINT),
        run_json=run_file(layout.RUN_JSON),
    output:
        # rnr export writes more files (field_step*, warped_*); export.json, written last, lists them all.
        field=export_file(FIELD),
        detj=export_file(DETJ),
        manifest=export_file(MANIFEST),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, input: Path(input.checkpoint).parent,
        out=lambda w, output: Path(output.manifest).parent,
        device=DEVICE,
    log:
        f"{RESULTS}/logs/export/{{configuration}}/case{{case}}/seed{{seed}}.log",
    resources:
        gpu=1 if USE_GPU else 0,
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr export --case-dir {params.case_dir} --run-dir {params.run_dir} --out {params.out}"
        " --device {params.device} > {log} 2>&1"


rule export:
    input:
        [
            export_file(MANIFEST).format(configuration=c, case=n, seed=s)
            for c in CONFIGURATIONS
            for s in SEEDS[c]
            for n in CASES
        ],
