# Evaluation: a generation's model scored against real held-out data; per-item values the target
# keeps (e.g. per-sequence perplexities) go to distributions.npz (empty for most targets).


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=GEN.metrics,
        distributions=GEN.distributions,
    params:
        spec=generation_spec,
        gen=lambda w: int(w.gen),
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
