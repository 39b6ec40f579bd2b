# Evaluation: a generation's model scored against real held-out data; per-item values the target
# keeps (e.g. per-sequence perplexities) go to distributions.npz (empty for most targets).  A block of
# generations is scored by its own job too, so that a changed evaluate setting re-runs no block.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=GEN.metrics,
        distributions=GEN.distributions,
    params:
        spec=whole_generation_spec,
        gen=lambda w: int(w.gen),
        data=generation_stage("data"),
        fit=generation_stage("fit"),
        sample=generation_stage("sample"),
        evaluate=generation_stage("evaluate"),
    threads: generation_threads
    resources:
        gpu=generation_gpus,
    log:
        f"{GEN_LOG}/evaluate.log",
    benchmark:
        f"{GEN_LOG}/evaluate.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/evaluate.py"


rule block_evaluate:
    input:
        unpack(block_evaluate_inputs),
    output:
        metrics=BLOCK.metrics,
    params:
        spec=whole_chain_spec,
        data=chain_stage("data"),
        fit=chain_stage("fit"),
        sample=chain_stage("sample"),
        evaluate=chain_stage("evaluate"),
    threads: block_threads
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.evaluate.log",
    benchmark:
        f"{CHAIN_LOG}/gens{{first}}-{{last}}.evaluate.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/block_evaluate.py"
