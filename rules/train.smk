# Training: one generation per job (train -> generate -> evaluate), or a block of
# generations per job for cheap targets (train, generate and evaluate in memory).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory(f"{CHAIN}/gen{{gen}}/model"),
        manifest=f"{CHAIN}/gen{{gen}}/trainset.json",
    params:
        spec=chain_spec,
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/train.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/train.py"


rule block:
    input:
        unpack(block_inputs),
    output:
        state=f"{CHAIN}/gens{{first}}-{{last}}/state.npz",
        models=f"{CHAIN}/gens{{first}}-{{last}}/models.npz",
        metrics=f"{CHAIN}/gens{{first}}-{{last}}/metrics.csv",
    params:
        spec=chain_spec,
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/block.py"
