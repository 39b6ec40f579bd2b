# Real data: drawn from the truth or loaded, once per (experiment, seed), shared by every regime; an experiment's
# reference material (what its evaluation reads, and a curation step that reads a judge: a copy made by its own
# job); a pretrained model converted once per source for every study here (results/backbones/, ouroboros.backbones).


rule real_data:
    output:
        paths.real_data(S, "{exp}", "{seed}"),
    params:
        spec=real_spec,
        data=lambda w: PLAN.real_settings(w.exp, w.seed),
    log:
        f"{SEED_LOG}/real_data.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/real_data.py"


rule reference:
    input:
        unpack(lambda w: PLAN.reference_inputs(w.exp)),
    output:
        directory(paths.reference_dir(S, "{exp}")),
    params:
        spec=reference_spec,
        settings=lambda w: PLAN.reference_settings(w.exp),
    log:
        f"{LOGS}/{{exp}}/reference.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/reference.py"


rule curation_reference:
    input:
        unpack(lambda w: PLAN.reference_inputs(w.exp)),
    output:
        directory(paths.curation_reference_dir(S, "{exp}")),
    params:
        spec=reference_spec,
        settings=lambda w: PLAN.curation_reference_settings(w.exp),
    log:
        f"{LOGS}/{{exp}}/curation-reference.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/reference.py"


rule backbone:
    output:
        directory(paths.backbone_dir("{backbone}")),
    params:
        model=lambda w: PLAN.backbones[w.backbone],
    log:
        f"{LOGS}/backbones/{{backbone}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/backbone.py"
