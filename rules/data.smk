# Real data: drawn from the truth or loaded, once per (experiment, seed), shared by every regime.


rule real_data:
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/real.npz",
    params:
        spec=real_spec,
    log:
        f"{LOGS}/{{exp}}/seed{{seed}}/real_data.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/real_data.py"


rule reference:
    output:
        directory(f"{RESULTS}/{{exp}}/reference"),
    params:
        spec=reference_spec,
    log:
        f"{LOGS}/{{exp}}/reference.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/reference.py"
