# Opt-in: every run's fitted map as NIfTI files a viewer or another tool reads (rnr export), into
# results/<dataset>/export/<configuration>/case<N>/seed<S>/. Not part of `all` (a full-size DIR-Lab field is about
# 400 MB before compression): `snakemake --cores 4 export`.


rule export_run:
    input:
        case_json=PLAN.case_file(layout.CASE_JSON),
        checkpoint=PLAN.run_file(layout.CHECKPOINT),
        run_json=PLAN.run_file(layout.RUN_JSON),
    output:
        # rnr export writes more files (field_step*, warped_*); export.json, written last, lists them all.
        field=PLAN.export_file(layout.FIELD),
        detj=PLAN.export_file(layout.DETJ),
        manifest=PLAN.export_file(layout.MANIFEST),
    params:
        case_dir=lambda w, input: Path(input.case_json).parent,
        run_dir=lambda w, input: Path(input.checkpoint).parent,
        out=lambda w, output: Path(output.manifest).parent,
        device=PLAN.device,
    log:
        PLAN.log("export", "{configuration}/case{case}/seed{seed}"),
    resources:
        gpu=1 if PLAN.use_gpu else 0,
    conda:
        "../envs/rnr.yaml"
    shell:
        "rnr export --case-dir {params.case_dir} --run-dir {params.run_dir} --out {params.out}"
        " --device {params.device} > {log} 2>&1"


rule export:
    input:
        PLAN.export_files(layout.MANIFEST),
