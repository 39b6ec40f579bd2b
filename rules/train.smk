# Training: one generation per job (train -> generate -> [curate] -> evaluate), generation 0 once per
# (experiment, seed) and shared by every regime (the node seed{s}; generations g >= 1 in {regime}/seed{s});
# or a block of generations per job for cheap targets (train, generate and curate in memory; the block's
# evaluation job, rules/evaluate.smk, scores it).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory(GEN.model),
        manifest=GEN.trainset,
    params:
        spec=whole_generation_spec,
        gen=lambda w: int(w.gen),
        data=generation_stage("data"),
        fit=generation_stage("fit"),
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
        chain=BLOCK.chain_metrics,
    params:
        spec=whole_chain_spec,
        data=chain_stage("data"),
        fit=chain_stage("fit"),
        sample=chain_stage("sample"),
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
