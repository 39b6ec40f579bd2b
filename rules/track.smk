# MLflow tracking: separate jobs after the compute jobs, writing small receipts.
# A failing backend fails only these jobs; rerunning snakemake logs what is missing.


rule track_init:
    output:
        f"{RESULTS}/tracking/experiment.json",
    params:
        study=STUDY.name,
        uri=TRACKING["uri"],
        artifacts=TRACKING["artifacts"],
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
        f"{CHAIN}/gens{{first}}-{{last}}/tracking.json",
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
        f"{CHAIN}/gen{{gen}}/tracking.json",
    params:
        spec=chain_spec,
        uri=TRACKING["uri"],
        repo=workflow.basedir,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/tracking.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/track_generation.py"


rule track_study:
    input:
        experiment=f"{RESULTS}/tracking/experiment.json",
        metrics=f"{RESULTS}/metrics.csv",
        plots=plot_files() + sample_grid_files(),
        chains=[chain_last_receipt(c) for c in STUDY.chains],
    output:
        f"{RESULTS}/tracking/study.json",
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
