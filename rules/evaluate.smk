# Evaluation: a generation's model scored against real held-out data.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        f"{CHAIN}/gen{{gen}}/metrics.csv",
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
