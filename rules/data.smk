# Real data: drawn from the truth or loaded, once per (experiment, seed), shared by every regime.


rule real_data:
    output:
        paths.real_data(S, "{exp}", "{seed}"),
    params:
        spec=real_spec,
    log:
        f"{SEED_LOG}/real_data.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/real_data.py"


rule reference:
    output:
        directory(paths.reference_dir(S, "{exp}")),
    params:
        spec=reference_spec,
    log:
        f"{LOGS}/{{exp}}/reference.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/reference.py"
