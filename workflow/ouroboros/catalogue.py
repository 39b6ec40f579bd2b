"""A study's metric catalogue: the metrics it reports (for the whole study or one target's experiments), what
each means and its unit, from the targets' declarations, the curation step's and the chain engine's.  What the
plots, the report and the sweep plots caption with; the rules hold one (``METRICS`` in rules/common.smk)."""
from __future__ import annotations

from typing import Optional

from ouroboros.chain import METRICS as ENGINE_METRICS
from ouroboros.config import Study
from ouroboros.curation import METRICS as CURATION_METRICS
from ouroboros.curation import UNITS as CURATION_UNITS
from ouroboros.targets import target_class


class MetricCatalogue:
    def __init__(self, study: Study):
        self.study = study

    def metrics(self, target: Optional[str] = None) -> list[str]:
        """Every metric the study (or its experiments of ``target``) reports: the targets' first, in study
        order, then curation's, then the engine's."""
        exps = [e for e in self.study.experiments if target is None or e.target == target]
        names = list(dict.fromkeys(m for e in exps for m in target_class(e.target).metrics_for(e.params)))
        for e in exps:
            cur = e.make_curation()
            names += [m for m in (cur.metric_names() if cur else []) if m not in names]
        return names + [m for m in ENGINE_METRICS if m not in names]

    def describe(self, metric: str) -> str:
        if metric in CURATION_METRICS:
            return CURATION_METRICS[metric]
        if metric in ENGINE_METRICS:
            return ENGINE_METRICS[metric]
        return next((d for e in self.study.experiments
                     if (d := target_class(e.target).metrics_for(e.params).get(metric))), "")

    def unit(self, metric: str) -> str:
        if metric in CURATION_UNITS:
            return CURATION_UNITS[metric]
        return next((u for e in self.study.experiments if (u := target_class(e.target).units.get(metric))), "")

    def plot_metrics(self, target: str) -> dict[str, dict]:
        """metric -> {description, unit} for the plots of one target (the plot job's and the report's)."""
        return {m: {"description": self.describe(m), "unit": self.unit(m)} for m in self.metrics(target)}

    def headlines(self) -> dict[str, tuple[str, str]]:
        """experiment label -> (headline metric, its unit): what the console shows of a finished generation."""
        out = {}
        for e in self.study.experiments:
            metric = target_class(e.target).headline_for(e.params)
            out[e.label] = (metric, self.unit(metric))
        return out
