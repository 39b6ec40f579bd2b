"""Claims as data: what a study checks of the published results it reproduces, with an interval across seeds
and a verdict.

A study's ``claims:`` is a list of entries (free text is still accepted, as a description that checks
nothing).  Each names its source, the statement in words, which of the eight meanings of "model collapse" it
tests (Schaeffer et al. 2025, :data:`DEFINITIONS`) and a check over the study's metrics table:

- ``value``: a metric at a generation equals ``expected`` (a number, or ``closed_form``: the target's theory
  for that metric, regime and generation) within ``tolerance`` (a fraction of it with ``relative: true``);
- ``direction``: a metric ``rises``, ``falls`` or stays ``flat`` (within ``tolerance``) from generation
  ``from`` to ``to``;
- ``order``: regime ``above`` has the larger metric than regime ``below`` at a generation (paired by seed);
  either side may be ``{experiment: E, regime: R}``, to compare experiments (a curation against none);
- ``bounded``: a metric stays under ``level`` at every generation up to ``to`` (its maximum, per seed);
- ``slope``: the log-log slope of a sweep plot's numbers against its ``x`` (per seed, over the sweep points
  that ``where`` selects) equals ``expected`` within ``tolerance``, or ``rises`` / ``falls``.

Each check reduces every seed's chain to one number (the metric, a difference, a maximum), and the verdict
comes from the 95% t-interval of their mean: ``holds`` when the interval lies on the claim's side of its
decision boundary, ``fails`` when it lies on the other, ``inconclusive`` when it straddles it or when there is
one seed (no interval), never ``holds``.  An inconclusive check says how many seeds would decide it at the
spread observed.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ouroboros import io
from ouroboros import regimes as R
from ouroboros.catalogue import MetricCatalogue
from ouroboros.settings import ConfigError
from ouroboros.sweeps import experiment_records, per_seed_table, theory_value
from ouroboros.tables import read_study

#: the eight meanings of "model collapse" that papers mix (Schaeffer et al. 2025, "Position: Model Collapse
#: Does Not Mean What You Think"); a claim says which one it tests
DEFINITIONS = {
    1: "catastrophic increase of population risk",
    2: "any increase of population risk",
    3: "asymptotically diverging risk",
    4: "change in scaling law",
    5: "collapsing variance",
    6: "entanglement of real data modes",
    7: "disappearance of real tail data",
    8: "appearance of hallucinated data",
}
KINDS = ("value", "direction", "order", "bounded", "slope")
#: the interval each verdict is read from
LEVEL = 0.95
#: the most seeds an inconclusive check is said to need (beyond: "more than" this)
MAX_SEEDS = 1000
COLUMNS = ["claim", "source", "definition", "check", "expected", "measured", "low", "high", "n", "interval",
           "verdict", "seeds_needed", "commit"]


@dataclass(frozen=True)
class Claim:
    index: int
    statement: str
    source: str
    definition: int
    check: dict

    @property
    def where(self) -> str:
        return f"claims[{self.index}]"

    def describe(self) -> str:
        c = self.check
        if c["kind"] == "slope":
            where = ", ".join(f"{k} = {v}" for k, v in c.get("where", {}).items())
            return f"log-log slope of sweep {c['sweep']} against its x" + (f" ({where})" if where else "")
        if c["kind"] == "order":
            (ea, ra), (eb, rb) = sides(c)
            if ea == eb:
                return f"{c['metric']} of {ea} at generation {c['generation']}: {ra} - {rb}"
            return f"{c['metric']} at generation {c['generation']}: {ea}/{ra} - {eb}/{rb}"
        chain = f"{c['experiment']}/{c.get('regime', '')}".rstrip("/")
        if c["kind"] == "value":
            return f"{c['metric']} of {chain} at generation {c['generation']}"
        if c["kind"] == "direction":
            return f"{c['metric']} of {chain}, generation {c['from']} to {c['to']}"
        return f"largest {c['metric']} of {chain}, generations 0 to {c['to']}"

    def expected(self) -> str:
        c = self.check
        if c["kind"] in ("value", "slope") and "expected" in c:
            tol = f"{c['tolerance']:.0%}" if c.get("relative") else f"{c['tolerance']:g}"
            where = "closed form " if c.get("closed_form") else ""
            return f"{where}{c['expected']:.4g} +/- {tol}"
        if c["kind"] in ("direction", "slope"):
            return {"rises": "> 0", "falls": "< 0"}.get(c["expect"], f"within +/- {c.get('tolerance', 0):g}")
        if c["kind"] == "order":
            return "> 0"
        return f"< {c['level']:g}"


def parse(raw) -> list[Claim]:
    """The checkable claims of a study's ``claims:`` setting (free text: none)."""
    if not isinstance(raw, list):
        return []
    return [Claim(i, c["statement"], c.get("source", ""), int(c.get("definition", 0)), dict(c["check"]))
            for i, c in enumerate(raw)]


def sides(c: dict) -> list[tuple[str, str]]:
    """An order check's (experiment, regime) above and below: a side is a regime of ``experiment``, or a mapping
    ``{experiment, regime}`` naming its own experiment."""
    out = []
    for key in ("above", "below"):
        side = c[key]
        out.append((side.get("experiment", c.get("experiment")), side["regime"]) if isinstance(side, dict)
                   else (c.get("experiment"), side))
    return out


def _check_produced(c: dict, at: str, exp, catalogue) -> None:
    """The check's metric is one the experiment's target reports, at generations the experiment runs."""
    metrics = catalogue.metrics(exp.target)
    if c["metric"] not in metrics:
        raise ConfigError(f"invalid config at {at}.metric: {c['metric']!r} is not a metric of target "
                          f"{exp.target} (e.g. {', '.join(metrics[:6])})")
    for key in ("generation", "from", "to"):
        if key in c and not 0 <= c[key] <= exp.generations:
            raise ConfigError(f"invalid config at {at}.{key}: generation {c[key]} is not run (experiment "
                              f"{exp.label} runs generations 0 to {exp.generations})")


def _check_order(c: dict, at: str, study, catalogue) -> None:
    if not ("above" in c and "below" in c):
        raise ConfigError(f"invalid config at {at}: an order check names the regimes above and below")
    missing = [k for k in ("metric", "generation") if k not in c]
    if missing:
        raise ConfigError(f"invalid config at {at}: an order check needs {', '.join(missing)}")
    if c.get("expected") == "closed_form":
        raise ConfigError(f"invalid config at {at}.expected: closed_form is for value and slope checks")
    names = [e.label for e in study.experiments]
    for key, (experiment, regime) in zip(("above", "below"), sides(c)):
        where = f"{at}.{key}" if isinstance(c[key], dict) else at
        if experiment is None:
            raise ConfigError(f"invalid config at {where}: an order check names its experiment ({', '.join(names)})")
        if experiment not in names:
            raise ConfigError(f"invalid config at {where}.experiment: {experiment!r} is not an experiment of this "
                              f"study ({', '.join(names)})")
        exp = study.experiment(experiment)
        regimes = sorted({ch.regime.label for ch in study.chains if ch.experiment.label == exp.label})
        if regime not in regimes:
            at_regime = f"{at}.{key}.regime" if isinstance(c[key], dict) else f"{at}.{key}"
            raise ConfigError(f"invalid config at {at_regime}: {regime!r} is not a regime of experiment "
                              f"{exp.label} ({', '.join(regimes)})")
        _check_produced(c, at, exp, catalogue)


def check_study(claims: Sequence[Claim], study) -> None:
    """Refuse, before any job, a claim naming an experiment, regime, metric or generation the study does not
    produce (one line naming the claim's key)."""
    catalogue = MetricCatalogue(study)
    for claim in claims:
        c = claim.check
        at = f"{claim.where}.check"
        if c["kind"] == "slope":
            _check_slope(c, at, study)
            continue
        if c["kind"] == "order":
            _check_order(c, at, study, catalogue)
            continue
        missing = [k for k in ("experiment", "metric") if k not in c]
        if missing:
            raise ConfigError(f"invalid config at {at}: a {c['kind']} check needs {', '.join(missing)}")
        names = [e.label for e in study.experiments]
        if c["experiment"] not in names:
            raise ConfigError(f"invalid config at {at}.experiment: {c['experiment']!r} is not an experiment of this "
                              f"study ({', '.join(names)})")
        exp = study.experiment(c["experiment"])
        regimes = sorted({ch.regime.label for ch in study.chains if ch.experiment.label == exp.label})
        if "regime" not in c:
            raise ConfigError(f"invalid config at {at}: a {c['kind']} check names its regime ({', '.join(regimes)})")
        if c["regime"] not in regimes:
            raise ConfigError(f"invalid config at {at}.regime: {c['regime']!r} is not a regime of experiment "
                              f"{exp.label} ({', '.join(regimes)})")
        _check_produced(c, at, exp, catalogue)
        required = {"value": ("generation", "expected", "tolerance"), "direction": ("from", "to", "expect"),
                    "bounded": ("to", "level")}[c["kind"]]
        missing = [k for k in required if k not in c]
        if missing:
            raise ConfigError(f"invalid config at {at}: a {c['kind']} check needs {', '.join(missing)}")
        if c.get("expected") == "closed_form":
            if c["kind"] != "value":
                raise ConfigError(f"invalid config at {at}.expected: closed_form is for value and slope checks")
            if closed_form_value(c, experiment_records(study)) is None:
                raise ConfigError(f"invalid config at {at}.expected: target {exp.target} has no closed form for "
                                  f"{c['metric']} under regime {c['regime']} (give a number)")


def _check_slope(c: dict, at: str, study) -> None:
    """A slope check names one of the study's sweep plots (over a setting, not generations), selects its points
    with ``where`` (columns the sweep draws by), and says what it expects."""
    sweeps = {s["name"]: s for s in study.config.get("plots", {}).get("sweeps", [])}
    if "sweep" not in c:
        raise ConfigError(f"invalid config at {at}: a slope check names its sweep plot ({', '.join(sweeps) or 'none'})")
    if c["sweep"] not in sweeps:
        raise ConfigError(f"invalid config at {at}.sweep: {c['sweep']!r} is not a sweep plot of this study "
                          f"(plots.sweeps: {', '.join(sweeps) or 'none'})")
    spec = sweeps[c["sweep"]]
    if spec["x"] == "generation":
        raise ConfigError(f"invalid config at {at}.sweep: sweep plot {c['sweep']!r} draws curves over generations; "
                          f"a slope is taken over a swept setting")
    columns = [k for k in (spec.get("panels"), spec.get("lines", "regime"), spec.get("y")) if k]
    columns += [k for k in ("regime", "regime_kind", "experiment") if k not in columns]
    for key in c.get("where", {}):
        if key not in columns:
            raise ConfigError(f"invalid config at {at}.where.{key}: sweep plot {c['sweep']!r} has no {key!r} to "
                              f"select by ({', '.join(columns)})")
    if "expected" in c and "tolerance" not in c:
        raise ConfigError(f"invalid config at {at}: a slope check with an expected value needs its tolerance")
    if "expected" not in c and c.get("expect") not in ("rises", "falls"):
        raise ConfigError(f"invalid config at {at}: a slope check needs expected and tolerance, or expect: rises "
                          f"or falls")


def closed_form_value(c: dict, experiments: Sequence[dict]) -> Optional[float]:
    """The closed form of a value check's metric at its generation (``expected: closed_form``), the one the plots
    draw, or None where the target's theory gives none for that metric and regime."""
    exp = next(e for e in experiments if e["label"] == c["experiment"])
    regime = next(r for r in exp["regimes"] if R.from_spec(r).label == c["regime"])
    return theory_value({"metric": c["metric"]}, exp, regime, c["generation"])


def resolve(claim: Claim, table=None, sweeps: Optional[dict] = None, experiments: Sequence[dict] = ()) -> Claim:
    """The claim with ``expected: closed_form`` replaced by the number (and ``closed_form: true`` kept to say so):
    a value check's theory at its generation, a slope check's slope of the theory over the sweep's points."""
    if claim.check.get("expected") != "closed_form":
        return claim
    if claim.check["kind"] == "slope":
        value = closed_form_slope(claim.check, table, sweeps or {}, experiments)
    else:
        value = closed_form_value(claim.check, experiments)
    if value is None:
        raise ValueError(f"{claim.where}: no closed form for {claim.describe()}")
    return Claim(claim.index, claim.statement, claim.source, claim.definition,
                 {**claim.check, "expected": value, "closed_form": True})


def needs_experiments(raw) -> bool:
    """Whether the claims job needs the study's experiments (a slope check, or a value against a closed form)."""
    return any(c.check["kind"] == "slope" or c.check.get("expected") == "closed_form" for c in parse(raw))


def _t(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + LEVEL / 2, n - 1))


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (nan for one value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval of the mean; one value: (it, nan, nan)."""
    mean, sd = _mean_sd(values)
    half = _t(len(values)) * sd / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


def seeds_needed(values: Sequence[float], boundaries: Sequence[float]) -> Optional[int]:
    """The fewest seeds whose interval, at the spread observed, clears the nearest decision boundary; None
    without a spread (one seed, or all equal)."""
    if len(values) < 2:
        return None
    mean, sd = _mean_sd(values)
    gap = min(abs(mean - b) for b in boundaries)
    if sd == 0 or gap == 0:
        return None if sd == 0 else MAX_SEEDS + 1
    for m in range(2, MAX_SEEDS + 1):
        if _t(m) * sd / math.sqrt(m) < gap:
            return m
    return MAX_SEEDS + 1


def _per_seed(table, experiment: str, regime: str, metric: str):
    rows = table[(table.experiment == experiment) & (table.regime == regime) & (table.metric == metric)]
    return {seed: dict(zip(g.generation, g.value)) for seed, g in rows.groupby("seed")}


def _slopes(c: dict, table, sweeps: dict, experiments: Sequence[dict]) -> list[float]:
    """Per seed, the least-squares slope of log(value) on log(x) over the sweep points ``where`` selects."""
    out = []
    for _, g in _sweep_points(c, table, sweeps, experiments).groupby("seed"):
        out.append(_slope(c, g[sweeps[c["sweep"]]["x"]], g["value"]))
    return out


def _sweep_points(c: dict, table, sweeps: dict, experiments: Sequence[dict]):
    rows = per_seed_table(table, sweeps[c["sweep"]], experiments)
    for key, want in c.get("where", {}).items():
        rows = rows[rows[key].astype(str) == str(want)]
    return rows


def _slope(c: dict, x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(set(x)) < 2 or (x <= 0).any() or (y <= 0).any() or not np.isfinite(y).all():
        raise ValueError(f"sweep {c['sweep']}: a log-log slope needs two or more points with positive x and "
                         f"value, got x = {x.tolist()}, value = {y.tolist()}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def closed_form_slope(c: dict, table, sweeps: dict, experiments: Sequence[dict]) -> Optional[float]:
    """The log-log slope of the theory the sweep plot draws, over the same points (``expected: closed_form``)."""
    points = _sweep_points(c, table, sweeps, experiments)
    theory = points.groupby(sweeps[c["sweep"]]["x"])["theory"].first()
    return None if theory.isna().any() else _slope(c, theory.index, theory.to_numpy())


def _values(claim: Claim, table, sweeps: Optional[dict] = None, experiments: Sequence[dict] = ()) -> list[float]:
    """One number per seed: what the check's interval is taken over."""
    c = claim.check
    if c["kind"] == "slope":
        return _slopes(c, table, sweeps or {}, experiments)
    if c["kind"] == "order":
        (ea, ra), (eb, rb) = sides(c)
        a = _per_seed(table, ea, ra, c["metric"])
        b = _per_seed(table, eb, rb, c["metric"])
        return [a[s][c["generation"]] - b[s][c["generation"]] for s in sorted(set(a) & set(b))]
    chains = _per_seed(table, c["experiment"], c["regime"], c["metric"])
    if c["kind"] == "value":
        return [g[c["generation"]] for g in chains.values()]
    if c["kind"] == "direction":
        return [g[c["to"]] - g[c["from"]] for g in chains.values()]
    return [max(v for gen, v in g.items() if gen <= c["to"]) for g in chains.values()]


def verdict(claim: Claim, values: Sequence[float]) -> dict:
    """The check's row of ``claims.csv`` but its text columns: measured, interval, n, verdict, seeds needed."""
    c = claim.check
    mean, low, high = interval(values)
    if c["kind"] in ("value", "slope") and "expected" in c:
        tol = c["tolerance"] * abs(c["expected"]) if c.get("relative") else c["tolerance"]
        lo, hi = c["expected"] - tol, c["expected"] + tol
        holds, fails, bounds = low >= lo and high <= hi, high < lo or low > hi, (lo, hi)
    elif c["kind"] == "direction" and c["expect"] == "flat":
        tol = c.get("tolerance", 0.0)
        holds, fails, bounds = low >= -tol and high <= tol, high < -tol or low > tol, (-tol, tol)
    elif c["kind"] == "bounded":
        holds, fails, bounds = high < c["level"], low >= c["level"], (c["level"],)
    elif c.get("expect") == "falls":
        holds, fails, bounds = high < 0, low > 0, (0.0,)
    else:  # rises, or the order: above zero
        holds, fails, bounds = low > 0, high < 0, (0.0,)
    decided = len(values) >= 2
    word = "holds" if decided and holds else "fails" if decided and fails else "inconclusive"
    need = ""
    if word == "inconclusive":
        m = seeds_needed(values, bounds)
        need = "2 or more (no spread to estimate from)" if m is None else f"more than {MAX_SEEDS}" if m > MAX_SEEDS else m
    return {"measured": mean, "low": low, "high": high, "n": len(values), "verdict": word, "seeds_needed": need}


def evaluate(claims: Sequence[Claim], table, commit: str = "", sweeps: Optional[dict] = None,
             experiments: Sequence[dict] = ()) -> list[dict]:
    """Every claim's row of ``claims.csv`` from the study's metrics ``table`` (pandas, as collect writes it, with
    the settings joined for slope checks), its sweep plots by name and experiments (``sweeps.experiment_records``)."""
    rows = []
    for claim in claims:
        claim = resolve(claim, table, sweeps, experiments)
        values = _values(claim, table, sweeps, experiments)
        if not values:
            raise ValueError(f"{claim.where}: the metrics table holds no {claim.describe()}")
        rows.append({"claim": claim.statement, "source": claim.source,
                     "definition": f"{claim.definition} {DEFINITIONS[claim.definition]}" if claim.definition else "",
                     "check": claim.describe(), "expected": claim.expected(), **verdict(claim, values),
                     "interval": f"t, {LEVEL:.0%}, over seeds", "commit": commit})
    return rows


def counts(rows: Sequence[dict]) -> str:
    """The verdicts in one phrase: "3 hold, 1 inconclusive"."""
    n = {w: sum(r["verdict"] == w for r in rows) for w in ("holds", "fails", "inconclusive")}
    words = {"holds": "hold" if n["holds"] != 1 else "holds", "fails": "fail" if n["fails"] != 1 else "fails",
             "inconclusive": "inconclusive"}
    return ", ".join(f"{k} {words[w]}" for w, k in n.items() if k) or "no claims"


def write(raw_claims, metrics_csv, out_csv, repo=".", sweeps: Optional[dict] = None,
          experiments: Sequence[dict] = ()) -> list[dict]:
    """The ``claims`` job: every checkable claim of the study against its metrics table, to ``claims.csv``."""
    import pandas as pd

    rows = evaluate(parse(raw_claims), read_study(metrics_csv), io.git_commit(repo)[:12], sweeps, experiments)
    io.save_text(out_csv, pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))
    return rows


def _number(text) -> str:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return str(text or "")
    return "" if v != v else f"{v:.3g}"


def measured_text(row: dict) -> str:
    """A claims.csv row's measurement in words: "0.365 [0.341, 0.388], 3" (mean, 95% interval, seeds)."""
    interval = f" [{_number(row['low'])}, {_number(row['high'])}]" if _number(row.get("low")) else ""
    return f"{_number(row['measured'])}{interval}, {row['n']}"


def report_rows(claims_csv) -> list[dict]:
    """The rows of a written ``claims.csv`` for the report's first page (statement, source, expected, measured,
    verdict, seeds needed); [] where the claims job has not run yet."""
    try:
        with open(claims_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return [{"statement": r["claim"], "source": r["source"], "expected": r["expected"], "measured": measured_text(r),
             "verdict": r["verdict"], "seeds_needed": r.get("seeds_needed", "")} for r in rows]


def note(claims_csv) -> str:
    """The study run's description in MLflow (markdown): the verdict counts and one line per claim."""
    rows = report_rows(claims_csv)
    lines = [f"**Claims checked: {counts(rows)}** (95% t-interval of the mean across seeds; the table: "
             f"claims.json under Artifacts)", ""]
    for r in rows:
        need = f"; seeds needed: {r['seeds_needed']}" if r["seeds_needed"] else ""
        lines.append(f"- **{r['verdict']}**: {r['statement']} ({r['source']}). Expected {r['expected']}; measured "
                     f"{r['measured']} seeds{need}.")
    return "\n".join(lines)


def verdicts(claims_csv) -> Optional[str]:
    """The verdict counts of a written ``claims.csv`` (the closing line's), or None where there is none yet."""
    try:
        with open(claims_csv, newline="", encoding="utf-8") as f:
            return counts(list(csv.DictReader(f)))
    except (OSError, csv.Error, KeyError):
        return None
