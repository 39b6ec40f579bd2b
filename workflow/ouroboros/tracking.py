"""MLflow tracking of collapse chains, kept apart from the computation.

Layout in MLflow: experiment = study; one parent run per chain (experiment,
regime, seed, config hash); one child run per tracked generation
(``mlflow.parentRunId`` set) with params, metrics (step = generation, mirrored
onto the parent), tags, the training and evaluation sets as dataset inputs,
the previous tracked generation's model as a model input, and the
generation's model as a LoggedModel; one study run with the plots and
``metrics.csv``.

Tracking jobs run after the compute jobs and only read their files, so a
tracking failure never costs a computed result.  Every write to a SQLite
backend happens under an exclusive file lock beside the database, so many
concurrent tracking jobs never hit "database is locked".  Rerunning a
generation deletes the runs (and models) it logged before for the same
(study, chain, generation, config hash).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ouroboros import claims, io, jobs, mlflow_models, paths
from ouroboros.chain import METRICS as ENGINE_METRICS
from ouroboros.chain import unstack_models
from ouroboros.config import ChainSpec
from ouroboros.curation import METRICS as CURATION_METRICS
from ouroboros.mlflow_models import local_artifacts
from ouroboros.targets import target_class
from ouroboros.targets.base import Target
from ouroboros.trackconf import (  # noqa: F401 (the tracking settings, re-exported)
    DEFAULT_ARTIFACTS,
    DEFAULT_DB,
    EXPERIMENT_KIND,
    UI_VIEW,
    TrackingError,
    resolve_artifacts,
    resolve_uri,
    sqlite_path,
)
from ouroboros.units import BlockUnit, unit_from_params

log = logging.getLogger("ouroboros")

METRIC_BATCH = 900


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# -- backend access --------------------------------------------------------------
#: seconds one request to a tracking server may take (MLflow retries it twice): a server that answers its health
#: check but hangs holds a tracking job about 3 x this long, once per run (see :func:`once_per_outage`)
REQUEST_TIMEOUT_S = 30
#: what an exception (or one it was raised from) is called when the backend could not be reached or timed out
OUTAGE_KINDS = ("URLError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutError",
                "MaxRetryError", "ConnectionRefusedError", "RemoteDisconnected")


def _is_outage(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ in OUTAGE_KINDS or "Max retries exceeded" in str(exc) or " is unreachable " in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def once_per_outage(func):
    """A tracking job's call, told once per run that the backend is out: the first job that cannot reach it (or
    times out) writes what it found to :func:`ouroboros.paths.tracking_outage`; the jobs after it in the same
    run (and its own retry) stop at once with that line instead of waiting for the server again.  The run's main
    process removes the note as it starts (rules/common.smk), so the next run tries again."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def call(*args, **kwargs):
        study = sig.bind(*args, **kwargs).arguments["study"]
        note = Path(paths.tracking_outage(study["study"]))
        if note.is_file():
            raise TrackingError(f"not tried: earlier in this run, {note.read_text().strip()}")
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if _is_outage(exc):
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                note.parent.mkdir(parents=True, exist_ok=True)
                note.write_text(msg + "\n")
            raise
    return call


def check_backend(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when the backend cannot be reached or written."""
    path = sqlite_path(uri)
    if path is not None:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(f"cannot create the folder of the tracking database {uri}: {exc}") from exc
        if not os.access(folder, os.W_OK):
            raise TrackingError(f"the tracking database {uri} is not writable")
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise TrackingError(f"MLflow tracking server {uri} answered /health with HTTP {resp.status}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({reason}). The computed results are kept; "
                "start the server (or fix tracking.uri) and rerun snakemake: only the missing tracking jobs run."
            ) from exc


@contextlib.contextmanager
def backend_lock(uri: str):
    """An exclusive lock for SQLite backends (no-op for servers)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _client(uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_S))
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def _wrap(uri: str):
    """Turn backend failures into a TrackingError that names the URI."""
    @contextlib.contextmanager
    def guard():
        try:
            yield
        except TrackingError:
            raise
        except Exception as exc:  # mlflow raises many kinds
            raise TrackingError(f"tracking to {uri} failed: {type(exc).__name__}: {exc}") from exc
    return guard()


# -- experiment --------------------------------------------------------------------


def source_tags(repo: str | os.PathLike, rule: str = "") -> dict[str, str]:
    """MLflow's standard source tags: git commit, user, and the Snakemake rule as the source name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"mlflow.source.git.commit": io.git_commit(repo), "mlflow.user": user, "mlflow.source.type": "JOB",
            "mlflow.source.name": f"snakemake rule {rule}" if rule else "snakemake"}


def experiment_name(study: str) -> str:
    """The study's MLflow experiment: ``ouroboros-<study>``, so that the study ``default`` is not mistaken for
    MLflow's own (empty) experiment "Default" beside it."""
    return f"ouroboros-{study}"


def ensure_experiment(study: dict) -> dict:
    """The study's experiment, created (with the database, if new) by whichever tracking job comes first; its
    kind (classical training) and description (the study's) set.  ``study``: {"study", "uri", "artifacts",
    "description", "claims"}.  Returns {"uri", "experiment", "experiment_id"}.  Under the backend lock, so that jobs
    starting together create it once."""
    name, uri, description = experiment_name(study["study"]), study["uri"], study.get("description") or ""
    check_backend(uri)
    with backend_lock(uri), _wrap(uri):
        client = _client(uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            exp_id = client.create_experiment(name, artifact_location=study.get("artifacts"),
                                              tags={"study": study["study"]})
            log.info("created experiment %s (id %s) in %s", name, exp_id, uri)
        elif exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
            exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        note = description.strip() or f"Ouroboros study {study['study']}"
        if isinstance(study.get("claims"), list):
            note += "\n\nClaims tested: " + "; ".join(c["statement"] for c in study["claims"])
        elif (study.get("claims") or "").strip():
            note += f"\n\nClaims tested: {study['claims'].strip()}"
        tags = {} if exp is None else exp.tags
        for key, value in (("mlflow.experimentKind", EXPERIMENT_KIND), ("mlflow.note.content", note)):
            if tags.get(key) != value:
                client.set_experiment_tag(exp_id, key, value)
    return {"uri": uri, "experiment": name, "experiment_id": exp_id}


# -- chains and generations ------------------------------------------------------------
class ChainTracker:
    """Logs one chain's generations; one instance per tracking job."""

    def __init__(self, spec: dict, uri: str, experiment_id: str, rule: str = "", repo: str = ".", shared: bool = False):
        """``shared``: the tracker of an experiment's generation 0, shared by its regimes (one per seed)."""
        self.chain = ChainSpec.from_params(spec)
        self.shared = shared
        self.spec = spec
        self.uri = uri
        self.experiment_id = experiment_id
        self.hash = config_hash(spec)
        self.rule = rule
        self.repo = repo
        check_backend(uri)
        self.client = _client(uri)

    # identity -------------------------------------------------------------------
    @property
    def path(self) -> str:
        return chain_path(self.chain, self.shared)

    @property
    def regime_label(self) -> str:
        return "shared" if self.shared else self.chain.regime.label

    @property
    def label(self) -> str:
        """The chain's run name: what tells runs of a study apart (seed, regime) first, where the UI's columns
        cut names off; the experiment last (``s0 mix-rho0.1 gaussian``)."""
        return chain_label(self.chain.seed, self.regime_label, self.chain.experiment)

    def model_name(self, generation: int, regime: Optional[str] = None) -> str:
        """``gen100-s0-mix-rho0_1-gaussian``: generation, seed, regime, experiment (``regime``: another label,
        such as a regime's name for the shared generation 0)."""
        c = self.chain
        return model_name(f"gen{generation}-{chain_label(c.seed, regime or self.regime_label, c.experiment, '-')}")

    def base_tags(self) -> dict[str, str]:
        c = self.chain
        return {"ouroboros.chain": self.path, "study": c.study, "experiment": c.experiment,
                "target": c.target_name, "regime": self.regime_label, "seed": str(c.seed),
                "config_hash": self.hash, "host": socket.gethostname(), "device": self.chain.target().device_name(),
                **source_tags(self.repo, self.rule)}

    def params(self) -> dict[str, str]:
        c = self.chain
        flat = {"target": c.target_name, "n": c.n, "lam": c.lam, "seed": c.seed,
                "replicates": c.replicates}
        if self.shared:
            flat.update(regime="shared", n_drawn=sum(c.emit_parts(0)))
        else:
            flat.update(c.regime.mlflow_params())
            flat.update(n_synthetic=c.n_synthetic, n_candidates=c.n_candidates)
            cur = c.curation()
            if cur is not None:
                flat.update(cur.mlflow_params())
        for k, v in c.params.items():
            flat[f"target.{k}"] = json.dumps(v) if isinstance(v, (dict, list)) else v
        return {k: str(v) for k, v in flat.items()}

    def _search(self, kind: str, generation: Optional[int] = None) -> list:
        """Every run of this chain and config hash of ``kind`` (all pages)."""
        f = (f"tags.`ouroboros.kind` = '{kind}' AND tags.`ouroboros.chain` = '{self.path}' "
             f"AND tags.study = '{self.chain.study}' AND tags.config_hash = '{self.hash}'")
        if generation is not None:
            f += f" AND tags.generation = '{generation}'"
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], f, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def parent(self) -> str:
        """The chain's parent run, created on first use."""
        from mlflow.entities import Param

        runs = self._search("chain")
        if runs:
            for extra in runs[1:]:
                self.client.delete_run(extra.info.run_id)
            self.new_parent = False
            return runs[0].info.run_id
        tags = dict(self.base_tags(), **{"ouroboros.kind": "chain"})
        run = self.client.create_run(self.experiment_id, run_name=self.label, tags=tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in self.params().items()])
        self.new_parent = True
        return run.info.run_id

    def forget(self, generations: Iterable[int]) -> int:
        """Delete the runs (and their models) logged earlier for these generations of this chain and config
        hash: one search for the whole job, nothing at all under a parent run this job created."""
        if getattr(self, "new_parent", False):
            return 0
        wanted = {str(g) for g in generations}
        old = [r for r in self._search("generation") if r.data.tags.get("generation") in wanted]
        for run in old:
            for model_id in _models_of(self.client, self.experiment_id, run.info.run_id):
                drop_logged_model(self.client, model_id)
            self.client.delete_run(run.info.run_id)
        return len(old)

    def mirror(self, parent: str, rows: Sequence[tuple[int, str, float]]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        metrics = [Metric(m, float(v), ts, int(g)) for g, m, v in rows]
        for i in range(0, len(metrics), METRIC_BATCH):
            self.client.log_batch(parent, metrics=metrics[i:i + METRIC_BATCH])

    def log_generation(self, parent: str, generation: int, metrics: dict[str, float], model,
                       model_dir: Optional[Path], train: dict, evaluation: dict,
                       previous_model: Optional[str], artifacts: Iterable[Path] = (),
                       run_metrics: Sequence = (), samples: Optional[dict] = None,
                       model_id: Optional[str] = None, note: str = "") -> dict:
        """One child run; ``train``/``evaluation``/``samples`` are {source, digest, name} (the training set, the
        real held-out data, the generation's synthetic samples); ``run_metrics``: (key, value, step) logged on
        the run only (job run time and memory, training curves). Returns {run_id, model_id}.  ``model_id``
        without ``model``: the run stands for a model logged by another run (a chain's view of the shared
        generation 0), which its metrics and lineage then point at; ``note``: the run's description.

        Earlier runs of the generation must be gone already (:meth:`forget`).  The writes are batched: the run
        with its tags, its params, its inputs (the data sets and the previous model) in one call, the model,
        then every metric in one call, each against the model and the data it was computed on
        (:func:`metric_data`)."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, Metric, Param
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        # generation first: the UI truncates long names, and lineage reads "gen3-... <- gen2-..."
        name = self.model_name(generation)
        tags = dict(self.base_tags(), **{"ouroboros.kind": "generation", "generation": str(generation),
                                         "mlflow.parentRunId": parent})
        if model is not None:
            tags["device"] = model.device_name()
        if note:
            tags["mlflow.note.content"] = note
        run = self.client.create_run(self.experiment_id, run_name=f"gen{generation} {self.label}", tags=tags)
        run_id = run.info.run_id
        params = dict(self.params(), generation=str(generation))
        datasets = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for ds, context in ((train, "training"), (evaluation, "evaluation"), (samples, "samples")):
                if ds is not None:
                    datasets[context] = MetaDataset(resolve_dataset_source(str(ds["source"])), name=ds["name"],
                                                    digest=ds["digest"])
        self.client.log_inputs(
            run_id, datasets=[DatasetInput(d._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, ctx)])
                              for ctx, d in datasets.items()],
            models=[LoggedModelInput(previous_model)] if previous_model else None)
        if model is not None and model_dir is not None:
            if not mlflow_models.logs_without_run(model):  # a flavor's log_model copies the run's params onto it
                self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
            model_id = mlflow_models.log_target_model_to(
                model, name, Path(model_dir), run_id, self.experiment_id, params,
                {**{k: v for k, v in tags.items() if not k.startswith("mlflow.") or k.startswith("mlflow.source.")},
                 "training_dataset": train["name"], "training_dataset_digest": str(train["digest"])})
            shared, apart = mlflow_models.share_files(model_id, Path(model_dir))
            if shared or apart:  # the weights are stored once: MLflow's copy is the generation's files
                self.client.set_logged_model_tags(model_id, {"ouroboros.shared_bytes": str(shared),
                                                             "ouroboros.copied_bytes": str(apart)})
                log.info("%s: %.1f MB of weights shared with %s%s", name, shared / 1e6, model_dir,
                         f"; {apart / 1e6:.1f} MB copied (the artifact store is remote or on another file system)"
                         if apart else "")
            logged_params = not mlflow_models.logs_without_run(model)
        else:
            logged_params = False
        for path in artifacts:
            self.client.log_artifact(run_id, str(path), artifact_path="samples")
        # the generation's metrics, on its run and (with a model) against that model and the data they were
        # computed on (none for a metric of the model against the known truth)
        ts = int(time.time() * 1000)
        on = {"real": datasets.get("evaluation"), "samples": datasets.get("samples"),
              "train": datasets.get("training"), "model": None}
        cls = target_class(self.chain.target_name)
        batch = []
        for k, v in metrics.items():
            ds = on[metric_data(cls, k)] if model_id else None
            batch.append(Metric(k, float(v), ts, int(generation), model_id=model_id,
                                dataset_name=ds.name if ds else None, dataset_digest=ds.digest if ds else None))
        batch += [Metric(k, float(v), ts, int(step)) for k, v, step in run_metrics]
        rest = [] if logged_params else [Param(k, v) for k, v in params.items()]
        for i in range(0, max(len(batch), 1), METRIC_BATCH):  # params ride with the first batch of metrics
            self.client.log_batch(run_id, metrics=batch[i:i + METRIC_BATCH], params=rest if i == 0 else [])
        self.client.set_terminated(run_id)
        return {"generation": generation, "run_id": run_id, "model_id": model_id}


def job_metrics(benchmarks: dict) -> dict[str, float]:
    """Run time (s, the whole job as Snakemake's ``benchmark:`` file records it) and peak resident memory (MB)
    of each job: the job's own exact measurement beside its log (``*.usage.json``, see
    :func:`ouroboros.logs.write_usage`) where present, else the benchmark file's sampled ``max_rss``."""
    out: dict[str, float] = {}
    for rule, path in sorted((benchmarks or {}).items()):
        try:
            lines = Path(path).read_text().strip().splitlines()
            row = dict(zip(lines[0].split("\t"), lines[-1].split("\t")))
            out[f"job_seconds_{rule}"] = float(row["s"])
            if row.get("max_rss", "NA") not in ("NA", "-", ""):
                out[f"job_max_rss_mb_{rule}"] = float(row["max_rss"])
        except (OSError, IndexError, KeyError, ValueError) as exc:
            log.warning("benchmark file %s unreadable (%s); its job metrics are not logged", path, exc)
            continue
        usage = Path(str(path).removesuffix(".benchmark.tsv") + ".usage.json")
        try:
            out[f"job_max_rss_mb_{rule}"] = float(json.loads(usage.read_text())["max_rss_mb"])
        except (OSError, ValueError, KeyError):
            pass
    return out


def training_curve(model_dir) -> list[tuple[int, float]]:
    """(step, loss) pairs a torch target wrote beside its model (``training_curve.csv``); [] if none."""
    path = Path(model_dir) / "training_curve.csv"
    if not path.is_file():
        return []
    rows = path.read_text().strip().splitlines()[1:]
    return [(int(a), float(b)) for a, b in (r.split(",") for r in rows)]


def metric_data(target, metric: str) -> str:
    """What a metric was computed on: ``train`` (the engine's ``train_items``), ``samples`` (curation scores
    the drawn candidates), or what the target declares (``real``, ``samples``, ``model``)."""
    if metric in ENGINE_METRICS:
        return "train"
    if metric in CURATION_METRICS:
        return "samples"
    return target.metric_data.get(metric, target.default_metric_data)


def chain_label(seed: int, regime: str, experiment: str, sep: str = " ") -> str:
    """Seed, regime, experiment: the part of run and model names that tells a study's chains apart."""
    return sep.join((f"s{seed}", regime, experiment))


def model_name(name: str) -> str:
    """MLflow model names may not contain / : . % " ': mix-rho0.1 becomes mix-rho0_1."""
    return re.sub(r"[/:.%\"']", "_", name)


def logged_models(study: str, uri: Optional[str] = None) -> dict[str, str]:
    """Every model logged for a study, as name -> ``models:/`` URI (all pages of the search; the default URI
    is the default SQLite database under the working folder).  A generation 0 that an experiment's regimes
    share (one generation per job) is there under its own name (``gen0-s0-shared-lm``) and under each chain's
    (``gen0-s0-replace-lm``), so that every chain's lineage can be looked up from generation 0 by its name."""
    uri = resolve_uri(uri, os.getcwd())
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name(study))
    if exp is None:
        raise TrackingError(f"no MLflow experiment named {experiment_name(study)!r} (study {study}) at {uri}")
    out: dict[str, str] = {}
    token = None
    while True:
        page = client.search_logged_models(experiment_ids=[exp.experiment_id], max_results=100, page_token=token)
        out.update({m.name: f"models:/{m.model_id}" for m in page})
        token = page.token
        if not token:
            break
    f = "tags.`ouroboros.kind` = 'chain' AND tags.`ouroboros.gen0_model_id` != ''"
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], f, max_results=1000, page_token=token)
        for run in page:
            t = run.data.tags
            name = model_name(f"gen0-{chain_label(t['seed'], t['regime'], t['experiment'], '-')}")
            out.setdefault(name, f"models:/{t['ouroboros.gen0_model_id']}")
        token = page.token
        if not token:
            return out


def drop_logged_model(client, model_id: str) -> None:
    """Delete a logged model and, where the artifact store is a local folder, its files (what ``mlflow gc``
    would remove later): a re-logged generation's old copy does not keep its weights on disk."""
    try:
        folder = local_artifacts(client.get_logged_model(model_id).artifact_location)
    except Exception:  # noqa: BLE001 - an older server: leave the files to mlflow gc
        folder = None
    client.delete_logged_model(model_id)
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def _models_of(client, experiment_id: str, run_id: str) -> list[str]:
    try:
        models = client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
    except Exception:  # older servers: nothing to clean
        return []
    return [m.model_id for m in models]


def _log_block(tracker: ChainTracker, parent: str, unit, previous_model: Optional[str], evaluation: dict,
               tmp: Path) -> tuple[list[dict], Optional[str]]:
    """Generations first..last computed by one block job (every ``every``-th and the last get a child run and
    a model; all go to the parent run); the block job's run time and peak memory go to the parent at step
    ``last``.  Returns the logged runs and the chain's last model."""
    uri, last = tracker.uri, unit.last
    block = paths.BlockFiles(unit.dir)
    metrics = jobs.read_metrics(block.metrics)
    by_gen: dict[int, dict[str, float]] = {}
    for g, m, v in metrics:
        by_gen.setdefault(g, {})[m] = v
    models = dict(unstack_models(io.load_npz(block.models, ("generation",)), tracker.chain.target()))
    tracked = unit.generations
    logged = []
    for g in tracked:
        model_dir = tmp / f"{tracker.path}/gen{g}"
        models[g].save(model_dir)
        train = {"source": unit.real if g == 0 else Path(block.models),
                 "digest": config_hash([tracker.hash, g, "trainset"]), "name": f"{tracker.path}/gen{g}/train"}
        # the block keeps no samples: they are re-drawn from the generation's model with its own stream
        samples = {"source": Path(block.models), "digest": config_hash([tracker.hash, g, "samples"]),
                   "name": f"{tracker.path}/gen{g}/samples"}
        with backend_lock(uri), _wrap(uri):
            rec = tracker.log_generation(parent, g, by_gen[g], models[g], model_dir, train, evaluation, previous_model,
                                         samples=samples)
        previous_model = rec["model_id"] or previous_model
        logged.append(rec)
    stride = unit.parent_stride  # a long chain's parent gets every stride-th generation
    mirrored = [(g, m, v) for g, m, v in metrics if g % stride == 0 or g == last] if stride > 1 else metrics
    with backend_lock(uri), _wrap(uri):
        tracker.mirror(parent, mirrored + [(last, k, v) for k, v in job_metrics(unit.bench).items()])
    return logged, previous_model


def _log_generation(tracker: ChainTracker, parent: str, unit, previous_model: Optional[str],
                    evaluation: dict) -> dict:
    """One generation computed by the train/generate/evaluate jobs.  ``unit.extra``: more metrics files of
    the chain to log (its curation metrics; at generation 1 also generation 0's, which is tracked once per
    experiment and seed), each row at its generation."""
    generation = unit.gen
    here = paths.GenerationFiles(unit.dir)
    rows = jobs.read_metrics(here.metrics)
    for path in unit.extra:
        rows += jobs.read_metrics(path)
    manifest = io.load_json(here.trainset)
    # a generation whose weights the chain does not keep (keep: last, every k) is logged without a model
    model = Target.load(here.model) if unit.weights else None
    train = {"source": Path(here.trainset), "digest": manifest["digest"],
             "name": f"{tracker.path}/gen{generation}/train"}
    samples = {"source": Path(here.samples), "digest": config_hash([tracker.hash, generation, "samples"]),
               "name": f"{tracker.path}/gen{generation}/samples"}
    artifacts = (model or tracker.chain.target()).sample_artifacts(Path(here.samples))
    run_metrics = [(k, v, generation) for k, v in job_metrics(unit.bench).items()]
    run_metrics += [("train_loss", loss, step) for step, loss in training_curve(Path(here.model))]
    with backend_lock(tracker.uri), _wrap(tracker.uri):
        rec = tracker.log_generation(parent, generation, {m: v for g, m, v in rows if g == generation}, model,
                                     Path(here.model), train, evaluation, previous_model, artifacts, run_metrics,
                                     samples=samples, note="" if unit.weights else
                                     f"Generation {generation}'s weights are not kept (keep: "
                                     f"{tracker.chain.params.get('keep')}): its metrics and data, no model.")
        tracker.mirror(parent, rows)
    return rec


def _link_gen0(tracker: ChainTracker, parent: str, shared: dict, evaluation: dict) -> dict:
    """A chain's own run for generation 0, which the experiment's regimes share: its metrics and data, its model
    the shared one (logged once, by the run ``shared`` of the seed's shared chain), so that the chain's lineage
    in MLflow starts at generation 0 and the chain's name finds it (:func:`logged_models`).  The chain's parent
    run records both ids (``ouroboros.gen0_run_id``, ``ouroboros.gen0_model_id``)."""
    c = tracker.chain
    gen0 = paths.generation(c.study, c.experiment, c.regime.label, c.seed, 0)
    rows = [r for r in jobs.read_metrics(gen0.metrics) if r[0] == 0]
    manifest = io.load_json(gen0.trainset)
    shared_path = chain_path(c, shared=True)
    train = {"source": Path(gen0.trainset), "digest": manifest["digest"], "name": f"{shared_path}/gen0/train"}
    samples = {"source": Path(gen0.samples), "digest": config_hash([shared["config_hash"], 0, "samples"]),
               "name": f"{shared_path}/gen0/samples"}
    note = (f"Generation 0 of {c.path}: the model every regime of {c.experiment} (seed {c.seed}) starts from, "
            f"logged once by the run {shared['run_id']} as {tracker.model_name(0, 'shared')}.")
    rec = tracker.log_generation(parent, 0, {m: v for g, m, v in rows}, None, None, train, evaluation,
                                 shared["model_id"], samples=samples, model_id=shared["model_id"], note=note)
    tracker.client.set_tag(parent, "ouroboros.gen0_run_id", rec["run_id"])
    tracker.client.set_tag(parent, "ouroboros.gen0_model_id", shared["model_id"] or "")
    tracker.client.set_tag(rec["run_id"], "ouroboros.shared_run_id", shared["run_id"])
    return rec


def chain_path(chain: ChainSpec, shared: bool) -> str:
    """How tracking names a chain: its path, or ``experiment/seed{s}`` for the generation 0 its regimes share."""
    return f"{chain.experiment}/seed{chain.seed}" if shared else chain.path


@once_per_outage
def track_group(name: str, units: Sequence[dict], study: dict, out_receipt, rule: str = "",
                repo: str = ".") -> dict:
    """Track a group of chains in one job (one MLflow import, one database connection, one model template).

    ``units`` in order: :class:`ouroboros.units.BlockUnit` (a block job's generations) or
    :class:`ouroboros.units.GenerationUnit` (one generation of a one-generation-per-job chain; ``shared``: an
    experiment's generation 0, tracked once per seed for all its regimes), or their ``to_params()``.  Lineage: each tracked model has the chain's
    previous tracked model as input; generation 1 of every regime has the shared generation 0's.
    Parent runs end FINISHED when their chain's units are all logged.  ``study``: see :func:`ensure_experiment`."""
    units = [unit_from_params(u) if isinstance(u, dict) else u for u in units]
    experiment = ensure_experiment(study)
    uri = experiment["uri"]
    wanted: dict[str, set[int]] = {}  # chain path -> every generation the group logs a child run for
    for unit in units:
        wanted.setdefault(_unit_path(unit), set()).update(unit.generations)
        if not isinstance(unit, BlockUnit) and unit.gen == 1:
            wanted[_unit_path(unit)].add(0)  # the chain's own run of the shared generation 0 (_link_gen0)
    chains: dict[str, _GroupChain] = {}  # chain path -> what the group holds of it
    evaluations: dict[tuple, dict] = {}  # (real data, experiment, seed) -> the evaluation data set of its runs
    with tempfile.TemporaryDirectory() as tmp:
        for unit in units:
            shared = not isinstance(unit, BlockUnit) and unit.shared
            path = _unit_path(unit)
            chain = chains.get(path)
            if chain is None:  # first unit of a chain: its tracker, its parent, one search for earlier runs
                tracker = ChainTracker(unit.spec, uri, experiment["experiment_id"], rule, repo, shared=shared)
                with backend_lock(uri), _wrap(uri):
                    chain = chains[path] = _GroupChain(tracker, tracker.parent())
                    tracker.forget(wanted[path])
            tracker, c = chain.tracker, chain.tracker.chain
            ev_key = (str(unit.real), c.experiment, c.seed)
            if ev_key not in evaluations:
                evaluations[ev_key] = _evaluation(tracker, unit.real)
            if isinstance(unit, BlockUnit):
                runs, chain.last_model = _log_block(tracker, chain.parent, unit, chain.last_model,
                                                    evaluations[ev_key], Path(tmp))
            else:
                runs, previous = [], chain.last_model
                if unit.gen == 1 and not shared:  # after the seed's shared generation 0, where this group logs it
                    gen0 = chains.get(chain_path(c, shared=True))
                    previous = gen0.last_model if gen0 is not None else None
                    if gen0 is not None and gen0.shared_run is not None:
                        with backend_lock(uri), _wrap(uri):
                            runs.append(_link_gen0(tracker, chain.parent, gen0.shared_run, evaluations[ev_key]))
                rec = _log_generation(tracker, chain.parent, unit, previous, evaluations[ev_key])
                if shared:
                    chain.shared_run = dict(rec, config_hash=tracker.hash)
                runs.append(rec)
                chain.last_model = rec["model_id"] or chain.last_model
            chain.runs += runs
    with backend_lock(uri), _wrap(uri):
        for chain in chains.values():
            chain.tracker.client.set_terminated(chain.parent)
    receipt = {"uri": uri, "group": name, "chains": {path: chain.receipt() for path, chain in chains.items()}}
    io.save_json(out_receipt, receipt)
    log.info("tracked group %s: %d chains, %d runs to %s", name, len(chains),
             sum(len(chain.runs) for chain in chains.values()), uri)
    return receipt


def _unit_path(unit) -> str:
    return chain_path(ChainSpec.from_params(unit.spec), shared=not isinstance(unit, BlockUnit) and unit.shared)


@dataclass
class _GroupChain:
    """What a tracking group holds of one chain: its tracker, its parent run, the runs it logged and the last
    model (the next one's input); for an experiment's shared generation 0, its run, which each regime's chain
    links (:func:`_link_gen0`)."""

    tracker: ChainTracker
    parent: str
    runs: list[dict] = field(default_factory=list)
    last_model: Optional[str] = None
    shared_run: Optional[dict] = None

    def receipt(self) -> dict:
        return {"config_hash": self.tracker.hash, "parent_run_id": self.parent, "runs": self.runs,
                "last_model_id": self.last_model}


def _evaluation(tracker: ChainTracker, real_path) -> dict:
    real = jobs.load_real(real_path)
    return {"source": real_path, "digest": io.digest({"test": real["test"]}),
            "name": f"{tracker.chain.experiment}/seed{tracker.chain.seed}/real-test"}


@once_per_outage
def track_study(study: dict, config: dict, metrics_csv, plots: Sequence, out_receipt, repo: str = ".") -> dict:
    """The study-level run: the tables and every plot (at its path under the study folder).  ``study``: see
    :func:`ensure_experiment`."""
    import mlflow
    experiment = ensure_experiment(study)
    uri, name = experiment["uri"], study["study"]
    h = config_hash(config)
    with backend_lock(uri), _wrap(uri):
        client = _client(uri)
        f = f"tags.`ouroboros.kind` = 'study' AND tags.study = '{name}'"
        for old in client.search_runs([experiment["experiment_id"]], f, max_results=100):
            client.delete_run(old.info.run_id)
        tags = {"ouroboros.kind": "study", "study": name, "config_hash": h, "host": socket.gethostname(),
                **source_tags(repo, "track_study")}
        with mlflow.start_run(experiment_id=experiment["experiment_id"], run_name=f"study {name}", tags=tags) as run:
            claims_csv = Path(metrics_csv).with_name("claims.csv")
            for table in (claims_csv, Path(metrics_csv), Path(metrics_csv).with_name("settings.csv"),
                          Path(metrics_csv).with_name("summary.csv")):
                if table.is_file():
                    mlflow.log_artifact(str(table))
            if claims_csv.is_file():  # the verdicts on the run's page: its tags and a table under Artifacts
                import pandas as pd

                mlflow.set_tag("ouroboros.claims", claims.verdicts(claims_csv))
                mlflow.set_tag("mlflow.note.content", claims.note(claims_csv))  # the run's description
                table = pd.read_csv(claims_csv)
                first = ["verdict", "claim", "measured", "low", "high", "n", "expected"]  # the verdict in view
                mlflow.log_table(table[first + [c for c in table.columns if c not in first]], "claims.json")
            base = Path(metrics_csv).parent
            files = [f for p in plots for f in (sorted(x for x in Path(p).rglob("*") if x.is_file()
                                                       and not x.name.startswith(".")) if Path(p).is_dir() else [p])]
            for p in files:  # paths kept relative to the study folder: plots/samples/vae/replace/seed0.png
                rel = Path(p).resolve().relative_to(base.resolve()) if Path(p).resolve().is_relative_to(
                    base.resolve()) else Path("plots") / Path(p).name
                mlflow.log_artifact(str(p), artifact_path=str(rel.parent))
            mlflow.log_dict(config, "config.json")
    receipt = {"uri": uri, "study": name, "run_id": run.info.run_id, "config_hash": h,
               "experiment_id": experiment["experiment_id"]}
    io.save_json(out_receipt, receipt)
    log.info("tracked study %s to %s (run %s)", name, uri, run.info.run_id)
    return receipt
