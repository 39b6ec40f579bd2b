"""The target protocol: a small required core, in the style of scikit-learn's estimators.

``Target(**params)`` holds hyperparameters; ``fit(data, rng)`` learns R replicate models at once (``data``
shaped ``(R, n, ...)``, masked points, or sufficient statistics) and returns ``self``; fitted attributes end
in an underscore.  ``sample(n, lam, rng)`` draws n items per replicate with sampling bias ``lam`` (lam < 1
narrows the spread, lam = 1 is unbiased).  ``evaluate(...)`` scores the fitted model against real held-out
data.  ``get_state``/``set_state`` expose the fitted model as plain arrays, which is how models are saved
(``.npz``, no pickle) and stacked per block of generations.

What a target author must write (the abstract core, checked when the class is instantiated):

* settings: :attr:`Target.name`, :attr:`Target.params_schema`, :attr:`Target.metrics` and ``__init__``
  taking the settings as keywords;
* :meth:`Target.real_data`, :meth:`Target.fit`, :meth:`Target.sample`, :meth:`Target.evaluate` (abstract);
* the model's state: :meth:`Target.get_state` / :meth:`Target.set_state` (plain arrays; what :meth:`Target.save`
  and :meth:`Target.load` write and read, and what block mode stacks), or ``save`` / ``_load_state`` themselves
  for a model that is not arrays (the torch targets' state dicts, one generation per job).

Provided from those: :meth:`Target.clone`, :meth:`Target.save` / :meth:`Target.load`,
:meth:`Target.sample_parts`.  :class:`Defaults` (a base of :class:`Target`) holds what the engine asks of
every target with a default a target may override: block sizes, ``for_regime``, ``drawing_points``, ``check``, ``draw_real``,
``reference``, sizes for the memory estimate, threads and GPUs, samples on disk and their artifacts.  Targets whose state is not plain arrays (torch) override ``save``/``load`` and run one
generation per job (:class:`~ouroboros.targets.torch_base.TorchTarget`).

Everything else is an opt-in capability (:mod:`ouroboros.targets.capabilities`), listed among the class's
bases: ``SufficientStatistics``, ``ExactMethod`` (the ``method: auto`` logic), ``Curatable`` (curation
hooks), ``ClosedForm`` (theory), ``MlflowFlavor`` (a native MLflow model; logging lives in
:mod:`ouroboros.mlflow_models`).
"""
from __future__ import annotations

import abc
import copy
import json
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from ouroboros import io
from ouroboros.data import Data, from_arrays, to_arrays
from ouroboros.regimes import Regime
from ouroboros.settings import STAGES, ConfigError, by_stage
from ouroboros.targets.registry import target_class


class Defaults:
    """What the engine asks of every target, with defaults a target overrides where they do not fit: block sizes,
    per-chain configuration and checks, fresh real data and fixed reference material, sizes for the memory
    estimate, threads and GPUs, how samples are written and shown.  Nothing here is required."""

    params: dict
    name: ClassVar[str]

    #: generations per job by default; 1 means one train/generate/evaluate job each
    default_block: ClassVar[int] = 1
    #: the largest block the target supports (None: no limit)
    max_block: ClassVar[Optional[int]] = None
    #: the metric the console shows for each finished generation (default: the first of :meth:`metrics_for`)
    headline: ClassVar[str] = ""
    #: metric name -> its unit, shown in plot axis labels ("nats per image", "per token"); unitless if absent
    units: ClassVar[dict[str, str]] = {}
    #: metrics that may be +inf by definition (a KL to a collapsed, singular model); any other metric that is
    #: not finite stops the job (an overflow is never written as a number); NaN means "undefined here"
    infinite_metrics: ClassVar[frozenset] = frozenset()
    #: what each metric is computed on, for MLflow's metric-to-dataset links: ``real`` (the real held-out data),
    #: ``samples`` (the generation's synthetic samples) or ``model`` (the fitted model against the known truth:
    #: no data set); metrics not listed are :attr:`default_metric_data`
    metric_data: ClassVar[dict[str, str]] = {}
    default_metric_data: ClassVar[str] = "real"
    #: name -> description of per-item values ``evaluate`` also returns (as arrays); they are stored per
    #: generation (``distributions.npz``) and drawn as overlaid histograms, one per generation
    distributions: ClassVar[dict[str, str]] = {}
    #: whether a block's stacked models are saved compressed (sparse states: the categorical's frequencies)
    compress_models: ClassVar[bool] = False
    #: the settings of stages after ``data`` that :meth:`reference` reads (its job re-runs when they change;
    #: it reads the data settings too): held by ``tests/test_stages.py``, which records what it reads
    reference_settings: ClassVar[tuple[str, ...]] = ()
    #: small settings the test suite runs this target with, each ``{"params": ..., "n": ..., "replicates": ...}``:
    #: every registered target is held by them to give the same numbers in every execution mode, under every
    #: regime, with and without curation (``tests/test_regime_modes.py``); a target must declare at least one
    test_settings: ClassVar[tuple[dict, ...]] = ()

    # -- size hints (the up-front memory estimate of a job; see ouroboros.preflight) ------------------
    def item_bytes(self) -> int:
        """Bytes of one training item in memory (default: ``d`` float64 values)."""
        return 8 * int(self.params.get("d", 1))

    def model_bytes(self) -> int:
        """Bytes of one replicate's fitted model (0: small or not known in advance)."""
        return 0

    # -- costs (the estimate before a run: ouroboros.costs) -----------------------------------------
    def runtime_bytes(self) -> int:
        """Memory a job of this target holds before any data: Python, numpy and the libraries it imports."""
        return 150 * 2 ** 20

    def fit_bytes(self, n: int) -> int:
        """Memory a fit needs beyond its data and the model itself (gradient descent: gradients, the optimiser's
        state, one batch's activations); 0 for a closed-form refit."""
        return 0

    def saved_model_bytes(self) -> int:
        """Bytes of one replicate's model as saved on disk (default: as in memory)."""
        return self.model_bytes()

    def score_bytes(self) -> int:
        """Memory scoring items under a model takes beyond the model (an evaluate or curate job's batches of
        logits; 0: small)."""
        return 0

    def work(self, stage: str, n: int) -> float:
        """Units of work of one job of ``stage`` (``fit``, ``sample``, ``evaluate``) on ``n`` items per replicate
        (fit: the training set; sample: the items drawn; evaluate: the items scored), in a unit of the target's
        choosing that a job's time grows with: the time estimate measures seconds per unit with a probe
        (:meth:`probe_params`) and scales them to every job of a study (default: items)."""
        return float(n)

    def probe_params(self) -> dict:
        """Settings of a probe that runs this target's fit, sample and evaluate at a small size, as fast per unit
        of :meth:`work` as the real settings (default: the real settings; a torch target cuts its steps)."""
        return dict(self.params)

    def probe_items(self, stage: str) -> int:
        """Items per replicate the probe fits on (``fit``) or draws and scores (``sample``); at most the study's n
        (default: all of them: a cheap target's generation is its own probe)."""
        return 10 ** 9

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

    def min_eval_items(self) -> int:
        """Samples the metrics need per replicate (0: whatever the generation drew is scored).  A target whose
        metrics are fitted to samples (the diffusion target's points) asks for a floor, so that a chain drawing
        few synthetic items (a large real share) is not scored on a handful: the chain then scores a separate
        draw of this many (its own stream, the chain's lam)."""
        return 0

    @classmethod
    def metrics_for(cls, params: dict) -> dict[str, str]:
        """The metrics an experiment with these settings reports (default: :attr:`Target.metrics`; a target whose
        metrics depend on a setting, such as the diffusion target's images or points, overrides it)."""
        return cls.metrics

    @classmethod
    def headline_for(cls, params: dict) -> str:
        """The metric the console shows for a finished generation of an experiment with these settings."""
        names = list(cls.metrics_for(params))
        return cls.headline if cls.headline in names else (names[0] if names else "")

    def get_params(self) -> dict:
        return dict(self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({args})"

    # -- per-chain configuration -----------------------------------------------
    def drawing_points(self) -> "Target":
        """This model, drawing items with ``sample`` (what a user who loads a model asks for); targets whose
        chains may draw sufficient statistics instead override it (:class:`~.capabilities.ExactMethod`)."""
        return self

    def for_regime(self, regime: Regime, curation=None) -> "Target":
        """The target as used in a chain with this regime, with or without a curation step (a
        :class:`~ouroboros.curation.Curation`; resolves ``auto`` settings)."""
        return self

    def gpus(self) -> int:
        """GPUs a job of this target will use (declared to Snakemake as ``resources: gpu``)."""
        return 0

    def check_experiment(self, n: int, replicates: int) -> Optional[str]:
        """A message if this target cannot run an experiment of n items and R replicates whatever its regime (a
        missing data file, model or wheel; too few real items), else None."""
        return None

    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        """A message if this target cannot run the given chain (this regime), else None."""
        return None

    # -- data beyond the real training set --------------------------------------------
    def draw_real(self, rng: np.random.Generator, m: int, replicates: int) -> Data:
        """m fresh real items per replicate (mix regime with ``fresh: true``)."""
        raise NotImplementedError

    def reference(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Fixed material shared by every chain of an experiment (evaluation samples, judges)."""
        return {}

    # -- folders a fit starts from (a pretrained model; the previous generation) ------------------
    def backbone(self) -> Optional[str]:
        """The pretrained model the fit starts from (the ``model:`` setting), or None: the workflow converts it once
        into the backbone cache (:mod:`ouroboros.backbones`) and attaches that folder as ``backbone`` to the train
        and reference jobs."""
        return None

    def starts_from_previous(self) -> bool:
        """Whether generation g's ``fit`` starts from generation g - 1's saved model (a warm start: its train
        job takes that model folder as an input)."""
        return False

    def start_from(self, previous: "Target") -> "Defaults":
        """Give the fit generation g - 1's fitted model in memory (block mode; one generation per job reads its
        folder instead, :attr:`attached`); used by targets that :meth:`starts_from_previous`."""
        self._previous = previous
        return self

    def previous_model(self) -> Optional["Target"]:
        """Generation g - 1's fitted model for a warm start: the one given by :meth:`start_from`, else the one
        saved in the ``previous`` folder attached to the fit, else None (generation 0)."""
        if getattr(self, "_previous", None) is not None:
            return self._previous
        folder = self.attached.get("previous")
        return Target.load(folder, like=self) if folder else None

    @property
    def attached(self) -> dict[str, str]:
        """Folders given to the fit: ``backbone`` (the converted pretrained model, :meth:`backbone`), ``previous``
        (generation g - 1's model folder); kept by :meth:`Target.clone`."""
        return getattr(self, "_attached", {})

    def attach(self, **folders: str) -> "Defaults":
        self._attached = {**self.attached, **{k: str(v) for k, v in folders.items() if v}}
        return self

    @property
    def image_shape(self) -> Optional[tuple[int, int]]:
        """(height, width) when the target's items are images: the report then shows sample grids."""
        return None

    # -- tracking hooks (called only by tracking jobs; mlflow is imported there) ------
    def device_name(self) -> str:
        """The device the target computes on (a tag of every tracked run)."""
        return "cpu"

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


class Target(Defaults, abc.ABC):
    """The required core of a target (see the module docstring); :class:`Defaults` and the capabilities of
    :mod:`ouroboros.targets.capabilities` hold the rest."""

    #: registry name
    name: ClassVar[str] = ""
    #: JSON schema (draft 2020-12) of the ``params`` mapping, with defaults
    params_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False, "properties": {}}
    #: metric name -> one-line description (used in plots and report captions)
    metrics: ClassVar[dict[str, str]] = {}
    def __init__(self, **params: Any):
        self.params = dict(params)

    # -- sklearn-like plumbing -------------------------------------------------
    def clone(self) -> "Target":
        twin = type(self)(**copy.deepcopy(self.params))
        return twin.attach(**self.attached) if self.attached else twin

    # -- data --------------------------------------------------------------------
    @abc.abstractmethod
    def real_data(self, rng: np.random.Generator, n: int, replicates: int) -> dict[str, np.ndarray]:
        """Real data for a chain: ``train`` (R, n, ...) and held-out ``test``."""

    # -- model -------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, data: Data, rng: np.random.Generator) -> "Target":
        """Fit R replicate models on ``data`` (each replicate on its own items); return ``self``."""

    @abc.abstractmethod
    def sample(self, n: int, lam: float, rng: np.random.Generator) -> Data:
        """n items per replicate, drawn with sampling bias ``lam``."""

    def sample_parts(self, sizes: list[int], lam: float, rng: np.random.Generator) -> Data:
        """Samples drawn in consecutive parts of the given sizes from one stream (generation 0, shared by
        regimes that need different numbers of items; each takes the first ones, see ``data.take_first``).

        Items are drawn at once and cut, so one part equals ``sample(n)``; targets whose samples are
        sufficient statistics override this to draw each part on its own.
        """
        total = int(sum(sizes))
        return self.sample(total, lam, rng)

    @abc.abstractmethod
    def evaluate(
        self,
        samples: Data,
        real: dict[str, np.ndarray],
        reference: dict[str, np.ndarray],
        gen0: "Target",
    ) -> dict[str, float]:
        """Metrics of the fitted model (its samples, against the real held-out data; ``gen0``: generation 0's
        model): scalars, or per-item arrays for the names in :attr:`distributions`."""

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted model as plain arrays (saved as ``.npz``, stacked per block): what :meth:`save` writes.
        Required unless the target overrides :meth:`save` / :meth:`load` (the torch targets' state dicts)."""
        raise NotImplementedError(f"target {self.name} keeps no array state (it saves its model itself)")

    def set_state(self, state: dict[str, np.ndarray]) -> "Target":
        """Restore :meth:`get_state`; return ``self``."""
        raise NotImplementedError(f"target {self.name} keeps no array state (it loads its model itself)")

    # -- persistence -------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.save_npz(directory / "state.npz", **self.get_state())
        io.save_json(directory / "target.json", {"target": self.name, "params": self.params,
                                                 **io.folder_record(directory, ("target.json",))})

    @classmethod
    def load(cls, directory: str | Path, like: Optional["Target"] = None) -> "Target":
        """Load a saved model; dispatches on the target name recorded beside it.  ``like``: the target as the loading
        job's spec makes it: its settings, not those recorded at training, then serve sampling and evaluation (a
        changed sample or evaluate setting re-runs only those jobs), and the settings the training read (stages
        data and fit) must equal the recorded ones, else the file is refused as stale or swapped."""
        directory = Path(directory)
        pruned = directory.with_name(directory.name + ".pruned.json")
        if pruned.is_file():  # paths.GenerationFiles.pruned
            rec = io.load_json(pruned)
            raise io.IntermediateFileError(
                f"{directory} holds no weights: its chain keeps those of few generations (keep: {rec.get('keep')}) "
                f"and removed these ({', '.join(rec.get('removed', {})) or 'none'}) once every job reading them was "
                f"done; to compute them again, delete {directory.parent} and run the workflow (this generation and "
                "every later one of its chain are then recomputed), or set keep: all", directory)
        meta_path = directory / "target.json"
        meta = io.load_json(meta_path)
        if isinstance(meta, dict) and isinstance(meta.get("files"), dict):  # what its job wrote, byte for byte
            io.check_digests(directory, meta["files"], str(meta_path))
        try:
            klass = type(like) if like is not None else (target_class(meta["target"]) if cls is Target else cls)
            if klass.name != meta["target"]:
                raise io.IntermediateFileError(f"{meta_path} describes a {meta['target']} model, not {klass.name}",
                                               directory)
            if like is not None:
                problem = like.stale_settings(meta["params"])
                if problem:
                    raise io.IntermediateFileError(f"{meta_path}: {problem}", directory)
                obj = like.clone()
            else:
                obj = klass(**meta["params"])
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise io.IntermediateFileError(f"{meta_path} is not a model description ({type(exc).__name__}: {exc})",
                                           directory) from exc
        try:
            return obj._load_state(directory)
        except (KeyError, TypeError, ValueError) as exc:
            raise io.IntermediateFileError(f"{directory} does not hold a valid {klass.name} model "
                                           f"({type(exc).__name__}: {exc})", directory) from exc

    def stale_settings(self, recorded: dict) -> Optional[str]:
        """Why a model trained with the ``recorded`` settings is not this target's (a setting its training read,
        of stage data or fit, differs), or None."""
        props = self.params_schema.get("properties", {})
        mine = by_stage(self.params_schema, self.params)
        theirs = by_stage(self.params_schema, {k: v for k, v in dict(recorded).items() if k in props})
        for stage in STAGES[:2]:
            for k, v in mine[stage].items():
                if k in theirs[stage] and json.dumps(theirs[stage][k], sort_keys=True) != json.dumps(v, sort_keys=True):
                    return (f"the model was trained with {k}={theirs[stage][k]!r}, the study's settings say {k}={v!r} "
                            "(a stale or swapped file: rerun its train job)")
        return None

    def _load_state(self, directory: Path) -> "Target":
        return self.set_state(io.load_npz(directory / "state.npz"))


def mean_and_median(name: str, values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    return {f"{name}_mean": float(np.mean(values)), f"{name}_median": float(np.median(values))}
