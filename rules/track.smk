# MLflow tracking: separate jobs after the compute jobs, writing small receipts.
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


rule track_block:
    input:
        unpack(track_block_inputs),
    output:
        f"{BLOCK}/tracking.json",
    params:
        spec=chain_spec,
        every=TRACKING["every"],
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.tracking.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_block.py"


rule track_generation:
    input:
        unpack(track_generation_inputs),
    output:
        f"{GEN}/tracking.json",
    params:
        spec=chain_spec,
        gen=lambda w: int(w.gen),
        shared=False,
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/tracking.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_generation.py"


use rule track_generation as track_gen0 with:
    input:
        unpack(track_gen0_inputs),
    output:
        f"{GEN0}/tracking.json",
    params:
        spec=gen0_spec,
        gen=0,
        shared=True,
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{SEED_LOG}/gen0/tracking.log",


rule track_study:
    input:
        experiment=paths.tracking_experiment(S),
        metrics=paths.metrics_table(S),
        plots=plot_files() + sample_grid_files() + distribution_files() + [paths.sweep_plot(S, n) for n in SWEEP_PLOTS],
        chains=[chain_last_receipt(c) for c in STUDY.chains],
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
