# Evaluation: a generation's model scored against real held-out data; per-item values the target
# keeps (e.g. per-sequence perplexities) go to distributions.npz (empty for most targets).


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=f"{CHAIN}/gen{{gen}}/metrics.csv",
        distributions=f"{CHAIN}/gen{{gen}}/distributions.npz",
    params:
        spec=chain_spec,
    resources:
        gpu=gpu_request,
    log:
        f"{CHAIN_LOG}/gen{{gen}}/evaluate.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/evaluate.py"
