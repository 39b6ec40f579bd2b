# MLflow tracking: separate jobs after the compute jobs, writing small receipts; each tracking job logs a group
# of chains (one MLflow import for many chains; see tracking_groups in common.smk).
# A failing backend fails only these jobs; rerunning snakemake logs what is missing.


rule track_init:
    output:
        paths.tracking_experiment(S),
    params:
        study=STUDY.name,
        uri=TRACKING["uri"],
        artifacts=TRACKING["artifacts"],
        description=config["description"],
    log:
        f"{LOGS}/tracking/init.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_init.py"


rule track_group:
    input:
        unpack(track_group_inputs),
    output:
        paths.tracking_group(S, "{group}"),
    params:
        units=track_group_units,
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{LOGS}/tracking/{{group}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_group.py"


rule track_study:
    input:
        experiment=paths.tracking_experiment(S),
        metrics=paths.metrics_table(S),
        plots=plot_files() + sample_grid_files() + distribution_files() + [paths.sweep_plot(S, n) for n in SWEEP_PLOTS],
        groups=[paths.tracking_group(S, g) for g in tracking_group_names()],
    output:
        paths.tracking_study(S),
    params:
        study=STUDY.name,
        config=STUDY.config,
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{LOGS}/tracking/study.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_study.py"
