# Training: one generation per job (train -> generate -> [curate] -> evaluate), generation 0 once per
# (experiment, seed) and shared by every regime; or a block of generations per job for cheap targets
# (train, generate, curate and evaluate in memory).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory(f"{GEN}/model"),
        manifest=f"{GEN}/trainset.json",
    params:
        spec=chain_spec,
        gen=lambda w: int(w.gen),
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/train.log",
    benchmark:
        f"{CHAIN_LOG}/gen{{gen}}/train.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/train.py"


use rule train as train_gen0 with:
    input:
        unpack(gen0_train_inputs),
    output:
        model=directory(f"{GEN0}/model"),
        manifest=f"{GEN0}/trainset.json",
    params:
        spec=gen0_spec,
        gen=0,
    resources:
        gpu=gen0_gpu_request,
    log:
        f"{SEED_LOG}/gen0/train.log",
    benchmark:
        f"{SEED_LOG}/gen0/train.benchmark.tsv",


rule block:
    input:
        unpack(block_inputs),
    output:
        state=f"{BLOCK}/state.npz",
        models=f"{BLOCK}/models.npz",
        metrics=f"{BLOCK}/metrics.csv",
    params:
        spec=chain_spec,
    threads: block_threads
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.log",
    benchmark:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/block.py"
