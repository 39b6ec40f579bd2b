# Generation: synthetic data drawn from a generation's model with sampling bias lam (generation 0 draws
# what every regime needs, and each takes the first ones), then the chain's curation step if it has one.


rule generate:
    input:
        model=f"{GEN}/model",
    output:
        directory(f"{GEN}/samples"),
    params:
        spec=chain_spec,
        gen=lambda w: int(w.gen),
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/generate.log",
    benchmark:
        f"{CHAIN_LOG}/gen{{gen}}/generate.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/generate.py"


use rule generate as generate_gen0 with:
    input:
        model=f"{GEN0}/model",
    output:
        directory(f"{GEN0}/samples"),
    params:
        spec=gen0_spec,
        gen=0,
    resources:
        gpu=gen0_gpu_request,
    log:
        f"{SEED_LOG}/gen0/generate.log",
    benchmark:
        f"{SEED_LOG}/gen0/generate.benchmark.tsv",


rule curate:
    input:
        unpack(curate_inputs),
    output:
        samples=directory(CURATED),
        metrics=CURATION_CSV,
    params:
        spec=chain_spec,
        gen=lambda w: int(w.cgen),
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{cgen}}/curate.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/curate.py"
