# Evaluation: a generation's model scored against real held-out data; per-item values the target
# keeps (e.g. per-sequence perplexities) go to distributions.npz (empty for most targets).


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=f"{GEN}/metrics.csv",
        distributions=f"{GEN}/distributions.npz",
    params:
        spec=chain_spec,
        gen=lambda w: int(w.gen),
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/evaluate.log",
    benchmark:
        f"{CHAIN_LOG}/gen{{gen}}/evaluate.benchmark.tsv",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_gen0 with:
    input:
        unpack(gen0_evaluate_inputs),
    output:
        metrics=f"{GEN0}/metrics.csv",
        distributions=f"{GEN0}/distributions.npz",
    params:
        spec=gen0_spec,
        gen=0,
    resources:
        gpu=gen0_gpu_request,
    log:
        f"{SEED_LOG}/gen0/evaluate.log",
    benchmark:
        f"{SEED_LOG}/gen0/evaluate.benchmark.tsv",
