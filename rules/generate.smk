# Generation: synthetic data drawn from a generation's model with sampling bias lam.


rule generate:
    input:
        model=f"{CHAIN}/gen{{gen}}/model",
    output:
        directory(f"{CHAIN}/gen{{gen}}/samples"),
    params:
        spec=chain_spec,
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/generate.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/generate.py"
