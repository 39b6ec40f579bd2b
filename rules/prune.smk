# Weights a chain does not keep (the torch targets' `keep`: last, every k): removed from a generation's model
# folder once every job that reads them is done; its description, training curve and the record of what was
# removed (bytes, sha256) stay, and so do its samples, metrics and lineage.


rule prune:
    input:
        unpack(prune_inputs),
    output:
        GEN.pruned,
    params:
        keep=lambda w: generation_of(w)[0].experiment.params.get("keep", "all"),
    log:
        f"{GEN_LOG}/prune.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/prune.py"
