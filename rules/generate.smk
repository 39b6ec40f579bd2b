# Generation: synthetic data drawn from a generation's model with sampling bias lam (generation 0 draws
# what every regime needs, and each takes the first ones), then the chain's curation step if it has one.


rule generate:
    input:
        model=GEN.model,
    output:
        directory(GEN.samples),
    params:
        spec=whole_generation_spec,
        gen=lambda w: int(w.gen),
        data=generation_stage("data"),
        fit=generation_stage("fit"),
        sample=generation_stage("sample"),
    threads: generation_threads
    resources:
        gpu=generation_gpus,
    log:
        f"{GEN_LOG}/generate.log",
    benchmark:
        f"{GEN_LOG}/generate.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/generate.py"


rule curate:
    input:
        unpack(curate_inputs),
    output:
        samples=directory(CURATED.curated),
        metrics=CURATED.curation_metrics,
    params:
        spec=whole_chain_spec,
        gen=lambda w: int(w.cgen),
        data=chain_stage("data"),
        fit=chain_stage("fit"),
        sample=chain_stage("sample"),
    threads: block_threads
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{cgen}}/curate.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/curate.py"
