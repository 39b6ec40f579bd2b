"""The target protocol, in the style of scikit-learn's estimators.

``Target(**params)`` holds hyperparameters; ``fit(data, rng)`` learns R
replicate models at once (``data`` shaped ``(R, n, ...)`` or
:class:`~ouroboros.data.Stats`) and returns ``self``; fitted attributes end in
an underscore.  ``sample(n, lam, rng)`` draws n items per replicate with
sampling bias ``lam`` (lam < 1 narrows the spread, lam = 1 is unbiased).
``evaluate(...)`` scores the fitted model against real held-out data.
``get_state``/``set_state`` expose the fitted model as plain arrays, which is
how models are saved (``.npz``, no pickle) and stacked per block of
generations.  Targets whose state is not plain arrays (torch) override
``save``/``load`` and run one generation per job (``max_block = 1``).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from ouroboros import data as D
from ouroboros import io
from ouroboros.data import Data, from_arrays, to_arrays
from ouroboros.regimes import Regime


class Target:
    #: registry name
    name: ClassVar[str] = ""
    #: generations per job by default; 1 means one train/generate/evaluate job each
    default_block: ClassVar[int] = 1
    #: the largest block the target supports (None: no limit)
    max_block: ClassVar[Optional[int]] = None
    #: JSON schema (draft 2020-12) of the ``params`` mapping, with defaults
    params_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False, "properties": {}}
    #: metric name -> one-line description (used in plots and report captions)
    metrics: ClassVar[dict[str, str]] = {}
    #: metric name -> its unit, shown in plot axis labels ("nats per image", "per token"); unitless if absent
    units: ClassVar[dict[str, str]] = {}
    #: whether fit depends on the data only through sufficient statistics (``summarize``), so that pools of
    #: data can be kept as those
    stats_sufficient: ClassVar[bool] = False
    #: name -> description of per-item values ``evaluate`` also returns (as arrays); they are stored per
    #: generation (``distributions.npz``) and drawn as overlaid histograms, one per generation
    distributions: ClassVar[dict[str, str]] = {}
    #: whether a block's stacked models are saved compressed (sparse states: the categorical's frequencies)
    compress_models: ClassVar[bool] = False
    #: curation hooks the target provides: ``candidates`` (its samples are items a curation step can keep),
    #: ``truth_logpdf``, ``loglik``, ``features``, ``judge_score``, ``duplicates`` (see below)
    curation_hooks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any):
        self.params = dict(params)

    # -- size hints (the up-front memory estimate of a job; see ouroboros.preflight) ------------------
    def item_bytes(self) -> int:
        """Bytes of one training item in memory (default: ``d`` float64 values)."""
        return 8 * int(self.params.get("d", 1))

    def model_bytes(self) -> int:
        """Bytes of one replicate's fitted model (0: small or not known in advance)."""
        return 0

    def threads(self, n: int, replicates: int) -> int:
        """Threads worth giving a block job that draws ``n`` items for each of ``replicates`` per generation
        (Snakemake's ``threads:``, scaled down to ``--cores``); 1 unless the target cuts its draws into
        chunks (:mod:`ouroboros.parallel`)."""
        return 1

    @classmethod
    def with_defaults(cls, params: dict) -> dict:
        """Every setting of ``params_schema``, with its default where ``params`` leaves it out."""
        props = cls.params_schema["properties"]
        unknown = set(params) - set(props)
        if unknown:
            raise TypeError(f"unknown {cls.name} settings {sorted(unknown)}")
        return {k: params.get(k, v.get("default")) for k, v in props.items()}

    # -- sklearn-like plumbing -------------------------------------------------
    def get_params(self) -> dict:
        return dict(self.params)

    def clone(self) -> "Target":
        return type(self)(**copy.deepcopy(self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({args})"

    # -- per-chain configuration -----------------------------------------------
    def for_regime(self, regime: Regime, curated: bool = False) -> "Target":
        """The target as used in a chain with this regime, with or without a curation step
        (resolves ``auto`` settings)."""
        return self

    def gpus(self) -> int:
        """GPUs a job of this target will use (declared to Snakemake as ``resources: gpu``)."""
        return 0

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        """A message if this target cannot run the given chain, else None."""
        return None

    # -- data --------------------------------------------------------------------
    def real_data(self, rng: np.random.Generator, n: int, replicates: int) -> dict[str, np.ndarray]:
        """Real data for a chain: ``train`` (R, n, ...) and held-out ``test``."""
        raise NotImplementedError

    def draw_real(self, rng: np.random.Generator, m: int, replicates: int) -> Data:
        """m fresh real items per replicate (mix regime with ``fresh: true``)."""
        raise NotImplementedError

    def reference(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fixed material shared by every chain of an experiment (evaluation samples, judges)."""
        return {}

    def summarize(self, points: Data) -> D.Summary:
        """The sufficient statistics of points (targets with ``stats_sufficient``; default: Gaussian)."""
        return D.Stats.from_points(points)

    # -- model -------------------------------------------------------------------
    def fit(self, data: Data, rng: np.random.Generator) -> "Target":
        raise NotImplementedError

    def sample(self, n: int, lam: float, rng: np.random.Generator) -> Data:
        raise NotImplementedError

    def sample_parts(self, sizes: list[int], lam: float, rng: np.random.Generator) -> Data:
        """Samples drawn in consecutive parts of the given sizes from one stream (generation 0, shared by
        regimes that need different numbers of items; each takes the first ones, see ``data.take_first``).

        Items are drawn at once and cut, so one part equals ``sample(n)``; targets whose samples are
        sufficient statistics override this to draw each part on its own.
        """
        total = int(sum(sizes))
        return self.sample(total, lam, rng)

    # -- curation hooks (see ouroboros.curation; a target lists those it provides in curation_hooks) -----
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

    def evaluate(
        self,
        samples: Data,
        real: dict[str, np.ndarray],
        reference: dict[str, np.ndarray],
        gen0: "Target",
    ) -> dict[str, float]:
        raise NotImplementedError

    def get_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, state: dict[str, np.ndarray]) -> "Target":
        raise NotImplementedError

    # -- theory ------------------------------------------------------------------
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

    @property
    def image_shape(self) -> Optional[tuple[int, int]]:
        """(height, width) when the target's items are images: the report then shows sample grids."""
        return None

    # -- tracking hooks (called only by tracking jobs; mlflow is imported there) ------
    def device_name(self) -> str:
        """The device the target computes on (a tag of every tracked run)."""
        return "cpu"

    #: packages a logged model needs to load
    mlflow_requirements: ClassVar[list[str]] = ["numpy", "pandas", "scipy", "scikit-learn", "mlflow"]

    #: True where the target logs the default array pyfunc model (tracking logs it without an active run)
    @property
    def mlflow_array_model(self) -> bool:
        return (type(self).log_mlflow_model is Target.log_mlflow_model
                and type(self).save_mlflow_model is Target.save_mlflow_model)

    @property
    def mlflow_logs_without_run(self) -> bool:
        """True where tracking logs the model without an active run, with the given params: the array pyfunc
        model, or a model the target saves with a flavor's ``save_model`` (:meth:`save_mlflow_model`)."""
        return self.mlflow_array_model or type(self).save_mlflow_model is not Target.save_mlflow_model

    def save_mlflow_model(self, path: Path, model_dir: Path) -> dict[str, Path]:
        """Optional, for a target with a native MLflow flavor: save the fitted model (saved in ``model_dir``) as an
        MLflow model folder at ``path`` with the flavor's ``save_model``; return {run artifact path: local
        folder} of extra files for the generation's run.  Tracking then logs the folder as a LoggedModel with a
        few database writes (:func:`ouroboros.mlflow_models.log_saved_model`) instead of the flavor's
        ``log_model``, which reads the run back several times per model."""
        raise NotImplementedError

    def log_mlflow_model(self, name: str, model_dir: Path):
        """Log the fitted model (saved in ``model_dir``) as an MLflow LoggedModel in the active run.

        Default: the folder :meth:`save_mlflow_model` writes, where the target has one; else a pyfunc "model from
        code" over the saved arrays (no pickle); ``predict(pd.DataFrame({"n": [..], "lam": [..], "seed": [..]}))``
        draws samples.  Targets with a native MLflow flavor override this or :meth:`save_mlflow_model`.  The
        array model's environment files are derived once per process
        (:func:`ouroboros.mlflow_models.log_pyfunc_from_template`): a block's hundreds of models cost a file
        copy and a few database writes each.
        """
        import mlflow

        from ouroboros.mlflow_models import ARRAY_MODEL, log_pyfunc_from_template

        if self.mlflow_array_model:
            return log_pyfunc_from_template(name, ARRAY_MODEL, Path(model_dir), self.mlflow_requirements)
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("log_mlflow_model needs an active MLflow run")
        params = mlflow.MlflowClient().get_run(run.info.run_id).data.params  # as the flavors' log_model copy them
        return self._log_saved(name, Path(model_dir), run.info.run_id, run.info.experiment_id, dict(params), None)

    def _log_saved(self, name: str, model_dir: Path, run_id: str, experiment_id: str, params: dict,
                   tags: Optional[dict]):
        import tempfile

        import mlflow

        from ouroboros.mlflow_models import log_saved_model, quiet_requirements

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model"
            with quiet_requirements():
                extra = self.save_mlflow_model(local, Path(model_dir))
            info = log_saved_model(name, local, run_id, experiment_id, params, tags)
            client = mlflow.MlflowClient()
            for artifact_path, folder in extra.items():
                client.log_artifacts(run_id, str(folder), artifact_path=f"{name}-{artifact_path}")
        return info

    def log_mlflow_model_to(self, name: str, model_dir: Path, run_id: str, experiment_id: str, params: dict,
                            tags: dict) -> str:
        """Log the model into run ``run_id`` (no active run needed for the array model or a target with
        :meth:`save_mlflow_model`) with these params and tags on the LoggedModel; returns its model id."""
        import mlflow

        if self.mlflow_array_model:
            from ouroboros.mlflow_models import ARRAY_MODEL, log_pyfunc_from_template

            return log_pyfunc_from_template(name, ARRAY_MODEL, Path(model_dir), self.mlflow_requirements, run_id=run_id,
                                            experiment_id=experiment_id, params=params, tags=tags).model_id
        if self.mlflow_logs_without_run:
            return self._log_saved(name, Path(model_dir), run_id, experiment_id, params, tags).model_id
        with mlflow.start_run(run_id=run_id):  # the flavors' log_model write into the active run
            model_id = self.log_mlflow_model(name, Path(model_dir)).model_id
        mlflow.MlflowClient().set_logged_model_tags(model_id, tags)
        return model_id

    # -- samples on disk (what the next generation's train job reads) -------------------
    def save_samples(self, samples: Data, directory: str | Path) -> None:
        """Write a generation's synthetic data into ``directory`` (default: ``samples.npz``)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        io.save_npz(Path(directory) / "samples.npz", **to_arrays(samples))

    def load_samples(self, directory: str | Path) -> Data:
        return from_arrays(io.load_npz(Path(directory) / "samples.npz"))

    def write_sample_artifacts(self, samples: Data, directory: Path) -> None:
        """Extra files beside a generation's samples (e.g. an image grid); written by the generate job."""

    def sample_artifacts(self, samples_dir: Path) -> list[Path]:
        """Files worth attaching to a generation's run (sample images, sample text)."""
        return []

    # -- persistence -------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.save_npz(directory / "state.npz", **self.get_state())
        io.save_json(directory / "target.json", {"target": self.name, "params": self.params})

    @classmethod
    def load(cls, directory: str | Path) -> "Target":
        """Load a saved model; dispatches on the target name recorded beside it."""
        from ouroboros.targets import target_class

        from ouroboros.settings import ConfigError

        directory = Path(directory)
        meta_path = directory / "target.json"
        meta = io.load_json(meta_path)
        try:
            klass = target_class(meta["target"]) if cls is Target else cls
            if klass.name != meta["target"]:
                raise io.IntermediateFileError(f"{meta_path} describes a {meta['target']} model, not {klass.name}",
                                               directory)
            obj = klass(**meta["params"])
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise io.IntermediateFileError(f"{meta_path} is not a model description ({type(exc).__name__}: {exc})",
                                           directory) from exc
        try:
            return obj._load_state(directory)
        except (KeyError, TypeError, ValueError) as exc:
            raise io.IntermediateFileError(f"{directory} does not hold a valid {klass.name} model "
                                           f"({type(exc).__name__}: {exc})", directory) from exc

    def _load_state(self, directory: Path) -> "Target":
        return self.set_state(io.load_npz(directory / "state.npz"))


def mean_and_median(name: str, values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    return {f"{name}_mean": float(np.mean(values)), f"{name}_median": float(np.median(values))}
