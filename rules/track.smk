# MLflow tracking: separate jobs after the compute jobs, writing small receipts; each tracking job logs a group
# of chains (one MLflow import for many chains; see tracking_groups in common.smk).  The study's experiment is
# created by whichever tracking job comes first (under the backend lock).
# A failing backend fails only these jobs; rerunning snakemake logs what is missing.


rule track_group:
    input:
        unpack(track_group_inputs),
    output:
        paths.tracking_group(S, "{group}"),
    params:
        plan=track_group_digest,
        study=TRACKING_STUDY,
        note=lambda w, input: TRACKING_NOTE,
        repo=workflow.basedir,
    log:
        f"{LOGS}/tracking/{{group}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_group.py"


rule track_study:
    input:
        metrics=paths.metrics_table(S),
        plots=PLAN.plot_dirs() + PLAN.sample_grid_files() + PLAN.distribution_files()
        + [paths.sweep_plot(S, n) for n in SWEEP_PLOTS],
        groups=[paths.tracking_group(S, g) for g in PLAN.tracking_groups],
        claims=[paths.claims_table(S)] if PLAN.claims else [],
    output:
        paths.tracking_study(S),
    params:
        study=TRACKING_STUDY,
        note=lambda w, input: TRACKING_NOTE,
        config=lambda w, input: STUDY.config,  # derived from the input: logged, never a rerun trigger
        settings=PLAN.digest(results_config(STUDY)),
        repo=workflow.basedir,
    log:
        f"{LOGS}/tracking/study.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_study.py"
