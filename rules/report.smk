# The study's tidy metrics table and its plots (shown by `snakemake --report`).


rule collect:
    input:
        [f for c in STUDY.chains for f in PLAN.metric_files(c)],
    output:
        metrics=paths.metrics_table(S),
        settings=report(paths.settings_table(S), caption="../report/settings.rst", category="Tables"),
        summary=report(paths.summary_table(S), caption="../report/summary.rst", category="Tables"),
    params:
        plan=PLAN.digest(PLAN.collect_args()),
    log:
        f"{LOGS}/collect.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/collect.py"


rule claims:
    input:
        metrics=paths.metrics_table(S),
        settings=paths.settings_table(S),
    output:
        report(paths.claims_table(S), caption="../report/claims.rst", category="Claims"),
    params:
        claims=PLAN.claims,
        context=PLAN.claim_context(),
        repo=workflow.basedir,
    log:
        f"{LOGS}/claims.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/claims.py"


rule plot:
    input:
        paths.metrics_table(S),
    output:
        report(
            directory(paths.plot_dir(S, "{target}")),
            patterns=[paths.PLOT_PATTERN],
            caption="../report/metric.rst",
            category="Metrics by generation",
            subcategory="{target}",
            labels={"target": "{target}", "metric": "{metric}"},
        ),
    params:
        plan=lambda w: PLAN.digest(PLAN.plot_experiments(w.target)),
        metrics=lambda w: METRICS.plot_metrics(w.target),
        band=config["plots"]["band"],
    log:
        f"{LOGS}/plot/{{target}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/plot.py"


rule sweep_plot:
    input:
        paths.metrics_table(S),
    output:
        figure=report(
            paths.sweep_plot(S, "{sweep}"),
            caption="../report/sweep.rst",
            category="Sweeps",
        ),
        table=paths.sweep_table(S, "{sweep}"),
    params:
        spec=lambda w: SWEEP_PLOTS[w.sweep],
        plan=PLAN.digest(PLAN.plot_experiments()),
        description=lambda w: METRICS.describe(SWEEP_PLOTS[w.sweep]["metric"]),
        statistic=lambda w: SWEEP_STATISTICS[SWEEP_PLOTS[w.sweep].get("statistic", "last")],
    log:
        f"{LOGS}/plot/sweeps/{{sweep}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/sweep_plot.py"


rule sample_grid:
    input:
        sample_grid_inputs,
    output:
        report(
            paths.sample_grid(S, "{exp}", "{regime}", "{seed}"),
            caption="../report/samples.rst",
            category="Samples across generations",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "regime": "{regime}", "seed": "{seed}"},
        ),
    params:
        generations=lambda w: PLAN.grid_generations(chain_of(w)),
        shape=lambda w: chain_of(w).job.target().image_shape,
    log:
        f"{LOGS}/plot/samples/{{exp}}/{{regime}}/seed{{seed}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/sample_grid.py"


rule distribution:
    input:
        lambda w: PLAN.distribution_inputs(w.exp),
    output:
        report(
            paths.distribution_plot(S, "{exp}", "{name}"),
            caption="../report/distribution.rst",
            category="Distributions by generation",
            subcategory="{exp}",
            labels={"experiment": "{exp}", "quantity": "{name}"},
        ),
    params:
        groups=lambda w: PLAN.distribution_groups(w.exp),
        description=lambda w: PLAN.distribution_description(w.exp, w.name),
    log:
        f"{LOGS}/plot/distributions/{{exp}}/{{name}}.log",
    conda:
        "../envs/ouroboros.yaml"
    script:
        "../scripts/distribution.py"
