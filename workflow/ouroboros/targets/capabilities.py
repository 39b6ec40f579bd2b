"""Opt-in capabilities of a target, beside the required core of :class:`~ouroboros.targets.base.Target`.

A target class lists the capabilities it has among its bases (``class GaussianTarget(ExactMethod,
SufficientStatistics, Curatable, ClosedForm, Target)``); code that uses one asks for it with the helpers at
the bottom (:func:`curation_hooks`, :func:`closed_form`, ...), so a target without it simply does not take
part (no curation, no theory overlay, a pool of points, the default array model in MLflow).

* :class:`SufficientStatistics` -- ``fit`` depends on the data only through ``summarize(points)``: pools of
  the accumulate regimes are kept as those statistics.
* :class:`ExactMethod` -- a ``method`` setting (``auto``, ``sample`` or an exact method that draws the
  sufficient statistics themselves); ``auto`` resolves per chain (the Gaussian's ``sufficient``, the
  categorical's ``counts``).
* :class:`Curatable` -- the hooks curation scorers and selectors call (:mod:`ouroboros.curation`).
* :class:`ClosedForm` -- theory: a metric's expectation per generation, an expected hitting time.
* :class:`MlflowFlavor` -- the model is logged with a native MLflow flavor instead of the default array
  pyfunc model (:mod:`ouroboros.mlflow_models` does the logging; nothing here imports mlflow).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from ouroboros import data as D
from ouroboros.data import Data
from ouroboros.regimes import Regime


class SufficientStatistics:
    """``fit`` depends on the data only through :meth:`summarize` (a :class:`~ouroboros.data.Summary`).

    Where nothing reads a generation's items (the regime picks none, no curation step picks any,
    :attr:`evaluate_reads_items` is False), chains keep only their statistics: :meth:`sample_summaries`."""

    #: whether ``evaluate`` reads the samples' items (then chains always keep the items)
    evaluate_reads_items: ClassVar[bool] = False

    def summarize(self, points: Data) -> D.Summary:
        raise NotImplementedError

    def sample_summaries(self, sizes, lam, rng) -> Data:
        """The statistics of what ``sample_parts(sizes, lam, rng)`` draws, part by part (one part: a summary;
        several: :class:`~ouroboros.data.Parts` of summaries).  Default: draw the items and summarise each
        part (exact methods draw summaries already); targets may derive them more cheaply from the same
        stream (the Gaussian's standard normals)."""
        drawn = self.sample_parts(sizes, lam, rng)
        if isinstance(drawn, (D.Summary, D.Parts)):
            return drawn
        if len(sizes) <= 1:
            return self.summarize(drawn)
        edges = np.cumsum([0, *sizes])
        parts = tuple(self.summarize(drawn[:, a:b]) for a, b in zip(edges[:-1], edges[1:]))
        return parts[0] if len(parts) == 1 else D.Parts(parts)


class ExactMethod:
    """A ``method`` setting: ``sample`` draws the items, :attr:`exact_method` draws their sufficient statistics
    (exact, far cheaper), ``auto`` uses the exact method wherever it can serve: not where the regime or a
    curation step must pick individual items (a step that runs on the statistics, such as exact dedup on
    category counts, does not).  The target's ``sample`` honours ``self.method``."""

    #: the name of the exact method (``sufficient``, ``counts``)
    exact_method: ClassVar[str] = ""
    params: dict
    method: str

    def for_regime(self, regime: Regime, curation=None):
        params = dict(self.params)
        picks = curation is not None and not curation.on_statistics(self)
        if params["method"] == "auto":
            params["method"] = "sample" if regime.needs_points or picks else self.exact_method
        out = type(self)(**params)
        out.curation_picks_items = picks
        return out

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        exact = self.exact_method
        if self.method == exact and regime.needs_points:
            return (f"method {exact!r} cannot run regime {regime.kind!r} (it must pick individual items); "
                    "use method 'sample' or 'auto'")
        if self.method == exact and getattr(self, "curation_picks_items", False):
            return (f"method {exact!r} cannot run this curation step (it picks individual items); use 'sample' "
                    "or 'auto'")
        return None

    def drawing_points(self):
        """This fitted model with method ``sample``: its ``sample`` gives items whatever method fitted it
        (what a user who loads a generation's model asks for; the state is shared, not copied)."""
        if self.method == "sample":
            return self
        out = type(self)(**{**self.params, "method": "sample"})
        out.curation_picks_items = getattr(self, "curation_picks_items", False)
        return out.set_state(self.get_state())

    def sample_parts(self, sizes, lam, rng):
        """Sufficient statistics cannot be cut: each part is drawn on its own (one part is ``sample(n)``)."""
        if self.method != self.exact_method or len(sizes) == 1:
            return super().sample_parts(sizes, lam, rng)
        return D.Parts(tuple(self.sample(int(m), lam, rng) for m in sizes))


class Curatable:
    """The hooks a curation step calls; :attr:`curation_hooks` lists those the target provides."""

    #: ``candidates`` (its samples are items a curation step can keep), ``truth_logpdf``, ``loglik``,
    #: ``features``, ``judge_score``, ``duplicates``
    curation_hooks: ClassVar[tuple[str, ...]] = ()

    def truth_logpdf(self, items) -> np.ndarray:
        """Log-density of the real distribution at candidates (R, N, ...) -> (R, N)."""
        raise NotImplementedError

    def loglik(self, items) -> np.ndarray:
        """Log-likelihood of candidates (R, N, ...) under this fitted model, replicate by replicate -> (R, N)."""
        raise NotImplementedError

    def features(self, items) -> np.ndarray:
        """Numeric features of candidates (R, N, ...) -> (R, N, f) (what a reward is a function of)."""
        return np.asarray(items, dtype=float).reshape(np.shape(items)[0], np.shape(items)[1], -1)

    def feature_dim(self) -> Optional[int]:
        """Length of the feature vector of one item, where known from the settings."""
        return None

    def judge_score(self, items, reference: dict) -> np.ndarray:
        """A judge's confidence in candidates (R, N, ...) -> (R, N)."""
        raise NotImplementedError

    def duplicates(self, items, settings: dict, reference: dict) -> np.ndarray:
        """(R, N) True where a candidate duplicates an earlier kept one (``settings``: the dedup selector's).

        Default for vector items: exactly equal (``tolerance`` 0) or within ``tolerance`` (Euclidean) of an
        earlier kept item, greedily in candidate order.
        """
        return D.near_duplicates(self.features(items), settings["tolerance"])

    def duplicates_on_counts(self, settings: dict) -> bool:
        """Whether the dedup selector with these settings can run on category counts (items that are equal
        exactly when they are the same category; the categorical target): then chains keep counts."""
        return False


class ClosedForm:
    """Theory, where it exists: drawn as overlays, and tested against simulation within Monte Carlo error."""

    def closed_form(self, metric: str, generations: np.ndarray, regime: Regime, n: int, lam: float,
                    curation: Optional[dict] = None) -> Optional[np.ndarray]:
        """The expected value of a metric per generation where theory gives it, else None
        (``curation``: the experiment's curation spec, or None)."""
        return None

    def expected_time(self, metric: str, regime: Regime, n: int, lam: float,
                      curation: Optional[dict] = None) -> Optional[float]:
        """Where theory gives it, the expected generation at which a 0/1 share-of-replicates metric (the CDF of
        an event, such as the categorical target's ``fixed``) reaches 1, i.e. E[T] = sum_t (1 - P(T <= t))."""
        return None


class MlflowFlavor:
    """The model is logged with a native MLflow flavor: override one of the two (mlflow is imported there)."""

    #: packages a logged model needs to load
    mlflow_requirements: ClassVar[list[str]] = ["numpy", "pandas", "scipy", "scikit-learn", "mlflow"]

    def save_mlflow_model(self, path: Path, model_dir: Path) -> dict[str, Path]:
        """Save the fitted model (saved in ``model_dir``) as an MLflow model folder at ``path`` with the
        flavor's ``save_model``; return {run artifact path: local folder} of extra files for the generation's
        run.  Tracking logs the folder with a few database writes
        (:func:`ouroboros.mlflow_models.log_saved_model`) instead of the flavor's ``log_model``."""
        raise NotImplementedError

    def log_mlflow_model(self, name: str, model_dir: Path) -> Any:
        """Log the fitted model (saved in ``model_dir``) as an MLflow LoggedModel in the active run."""
        raise NotImplementedError


# -- asking for a capability ------------------------------------------------------------------------------
def curation_hooks(target) -> tuple[str, ...]:
    return target.curation_hooks if isinstance(target, Curatable) else ()


def stats_sufficient(target_or_class) -> bool:
    cls = target_or_class if isinstance(target_or_class, type) else type(target_or_class)
    return issubclass(cls, SufficientStatistics)


def closed_form(target, metric, generations, regime, n, lam, curation=None) -> Optional[np.ndarray]:
    if not isinstance(target, ClosedForm):
        return None
    return target.closed_form(metric, generations, regime, n, lam, curation)


def expected_time(target, metric, regime, n, lam, curation=None) -> Optional[float]:
    if not isinstance(target, ClosedForm):
        return None
    return target.expected_time(metric, regime, n, lam, curation)


def mlflow_requirements(target) -> list[str]:
    return list(target.mlflow_requirements if isinstance(target, MlflowFlavor) else MlflowFlavor.mlflow_requirements)
