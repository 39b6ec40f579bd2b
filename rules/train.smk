# Training: one generation per job (train -> generate -> [curate] -> evaluate), generation 0 once per
# (experiment, seed) and shared by every regime (the node seed{s}; generations g >= 1 in {regime}/seed{s});
# or a block of generations per job for cheap targets (train, generate, curate and evaluate in memory).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory(GEN.model),
        manifest=GEN.trainset,
    params:
        spec=generation_spec,
        gen=lambda w: int(w.gen),
    threads: generation_threads
    resources:
        gpu=generation_gpus,
    log:
        f"{GEN_LOG}/train.log",
    benchmark:
        f"{GEN_LOG}/train.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/train.py"


rule block:
    input:
        unpack(block_inputs),
    output:
        state=BLOCK.state,
        models=BLOCK.models,
        metrics=BLOCK.metrics,
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
