"""MLflow "models from code" definitions used when logging generations, and a cheap way to log many of them.

``mlflow.pyfunc.log_model`` spends about 70 ms per model here re-deriving the same environment files
(requirements checks against the installed packages, conda.yaml, python_env.yaml) and copying the same code.
A tracking job logs up to hundreds of models of one kind, so :func:`log_pyfunc_from_template` builds that
folder once per process with ``mlflow.pyfunc.save_model`` and, for each model, copies it with the model's own
arrays, writes the model's identity into its ``MLmodel`` and logs it as a LoggedModel of the active run (the
same steps ``Model.log`` takes: create the LoggedModel with the run's params, upload its files, record it as
the run's output, mark it READY).  What MLflow stores is the same as ``mlflow.pyfunc.log_model``'s:
``mlflow.pyfunc.load_model("models:/<id>")`` loads it.  A flavor's model (the GMM's sklearn) is saved with
the flavor's ``save_model`` (15 ms) and logged the same way (:func:`log_saved_model`) instead of with its
``log_model``, which reads the run back several times (93 against 131 ms a GMM model, measured in one process).
"""
from __future__ import annotations

import atexit
import filecmp
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import unquote, urlparse

import numpy as np

from ouroboros.targets.capabilities import MlflowFlavor, mlflow_requirements

_TEMPLATES: dict[tuple, Path] = {}
#: the default "model from code" over a target's saved arrays
log = logging.getLogger("ouroboros")
ARRAY_MODEL = Path(__file__).resolve().parent / "array_model.py"
LM_MODEL = Path(__file__).resolve().parent / "lm_model.py"


@contextmanager
def quiet_requirements():
    """Skip MLflow's check of a model's pip requirements against every installed distribution while saving
    (2 s a process here, and it only warns: the requirements are ours and installed, this job imports them)."""
    import mlflow.utils.environment as environment

    check = environment.warn_dependency_requirement_mismatches
    environment.warn_dependency_requirement_mismatches = lambda reqs: None
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check


def array_example():
    """What the array model's ``predict`` takes: two items per replicate, unbiased, seed 0."""
    import pandas as pd

    return pd.DataFrame({"n": [2], "lam": [1.0], "seed": [0]})


def array_signature(width: int):
    """The array model's signature: ``n``, ``lam``, ``seed`` in; ``replicate`` and ``x0 .. x{width-1}`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("long", "n"), ColSpec("double", "lam", required=False),
                                         ColSpec("long", "seed", required=False)]),
                          outputs=Schema([ColSpec("long", "replicate")]
                                         + [ColSpec("double", f"x{i}") for i in range(width)]))


def item_width(target) -> int:
    """Numbers per item the array model's ``predict`` returns (one item drawn from the fitted model)."""
    items = np.asarray(target.drawing_points().sample(1, 1.0, np.random.default_rng(0)))
    return int(np.prod(items.shape[2:])) if items.ndim > 2 else 1


def _template(code: Path, model_dir: Path, requirements: Sequence[str], width: Optional[int] = None) -> Path:
    """``width``: the array model's numbers per item (its signature), None for other models from code."""
    import mlflow

    key = (str(code), tuple(requirements), width)
    if key not in _TEMPLATES:
        root = Path(tempfile.mkdtemp(prefix="ouroboros-pyfunc-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)  # a template lives as long as its process
        shutil.copytree(model_dir, root / "model")  # its name is the artifact path MLmodel records: artifacts/model
        with quiet_requirements():
            mlflow.pyfunc.save_model(path=str(root / "template"), python_model=str(code),
                                     artifacts={"model": str(root / "model")}, pip_requirements=list(requirements),
                                     signature=array_signature(width) if width is not None else None,
                                     input_example=array_example() if width is not None else None)
        _TEMPLATES[key] = root / "template"
    return _TEMPLATES[key]


def _run_of(run_id, experiment_id, params):
    import mlflow

    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("logging a model needs a run_id or an active MLflow run")
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        params = dict(run.data.params) if params is None else params
    return run_id, experiment_id, params


def log_saved_model(name: str, local: Path, run_id: Optional[str] = None, experiment_id: Optional[str] = None,
                    params: Optional[dict] = None, tags: Optional[dict] = None):
    """Log an MLflow model folder ``local`` (a flavor's ``save_model`` output; its ``MLmodel`` is rewritten in
    place) as a LoggedModel output of run ``run_id`` (default: the active run, with its params), the steps
    ``Model.log`` takes without its extra reads of the run; returns the LoggedModel (``.model_id``)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    run_id, experiment_id, params = _run_of(run_id, experiment_id, params)
    client = mlflow.MlflowClient()
    logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, params=params, tags=tags,
                                            experiment_id=experiment_id)
    try:
        meta = Model.load(str(Path(local) / "MLmodel"))
        meta.model_uuid = meta.model_id = logged.model_id
        meta.run_id = run_id
        meta.artifact_path = logged.artifact_location
        meta.utc_time_created = str(datetime.now(timezone.utc).replace(tzinfo=None))
        meta.save(str(Path(local) / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except Exception:
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged


def log_pyfunc_from_template(name: str, code: Path, model_dir: Path, requirements: Sequence[str],
                             run_id: Optional[str] = None, experiment_id: Optional[str] = None,
                             params: Optional[dict] = None, tags: Optional[dict] = None,
                             width: Optional[int] = None):
    """Log a pyfunc model from ``code`` over the files in ``model_dir`` as a LoggedModel output of run
    ``run_id`` (default: the active run, with its params); returns the LoggedModel (``.model_id``)."""
    run_id, experiment_id, params = _run_of(run_id, experiment_id, params)
    template = _template(Path(code), Path(model_dir), requirements, width)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        shutil.copytree(template, local, ignore=shutil.ignore_patterns("artifacts"))
        shutil.copytree(model_dir, local / "artifacts" / "model")
        return log_saved_model(name, local, run_id, experiment_id, params, tags)


# -- a target's model, whatever its kind (ouroboros.targets.capabilities.MlflowFlavor) ----------------------
def _overrides(target, hook: str) -> bool:
    return isinstance(target, MlflowFlavor) and getattr(type(target), hook) is not getattr(MlflowFlavor, hook)


def uses_array_model(target) -> bool:
    """True where the target is logged as the default array pyfunc model (no flavor of its own)."""
    return not (_overrides(target, "save_mlflow_model") or _overrides(target, "log_mlflow_model"))


def logs_without_run(target) -> bool:
    """True where the model is logged without an active run, with the given params: the array pyfunc model, or a
    model the target saves with a flavor's ``save_model``."""
    return uses_array_model(target) or _overrides(target, "save_mlflow_model")


def _log_saved(target, name: str, model_dir: Path, run_id: str, experiment_id: str, params: dict,
               tags: Optional[dict]):
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        with quiet_requirements():
            extra = target.save_mlflow_model(local, Path(model_dir))
        info = log_saved_model(name, local, run_id, experiment_id, params, tags)
        client = mlflow.MlflowClient()
        for artifact_path, folder in extra.items():
            client.log_artifacts(run_id, str(folder), artifact_path=f"{name}-{artifact_path}")
    return info


def log_target_model(target, name: str, model_dir: Path):
    """Log the fitted model (saved in ``model_dir``) as an MLflow LoggedModel in the active run: the target's
    flavor where it has one, else a pyfunc "model from code" over the saved arrays (no pickle);
    ``predict(pd.DataFrame({"n": [..], "lam": [..], "seed": [..]}))`` draws samples.  The array model's
    environment files are derived once per process (:func:`log_pyfunc_from_template`)."""
    import mlflow

    if uses_array_model(target):
        return log_pyfunc_from_template(name, ARRAY_MODEL, Path(model_dir), mlflow_requirements(target),
                                        width=item_width(target))
    if _overrides(target, "log_mlflow_model"):
        return target.log_mlflow_model(name, Path(model_dir))
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_target_model needs an active MLflow run")
    params = mlflow.MlflowClient().get_run(run.info.run_id).data.params  # as the flavors' log_model copy them
    return _log_saved(target, name, Path(model_dir), run.info.run_id, run.info.experiment_id, dict(params), None)


def local_artifacts(uri: Optional[str]) -> Optional[Path]:
    """The local folder an artifact location names (``file:`` or a plain path), or None (a remote store)."""
    if not uri:
        return None
    parsed = urlparse(str(uri))
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def share_files(model_id: str, model_dir: Path, min_bytes: int = 16 << 10) -> tuple[int, int]:
    """Store the logged model's copies of ``model_dir``'s files once: each file of at least ``min_bytes`` that the
    model's artifacts hold byte for byte becomes a hard link to the generation's file (one inode, one copy on
    disk; deleting either name keeps the other), where the artifact store is a local folder on the same file
    system.  Returns (bytes now shared, bytes left as a second copy: another file system or a remote store)."""
    import mlflow

    root = local_artifacts(mlflow.MlflowClient().get_logged_model(model_id).artifact_location)
    sources: dict[tuple[str, int], list[Path]] = {}
    for f in Path(model_dir).rglob("*"):
        if f.is_file() and not f.is_symlink() and f.stat().st_size >= min_bytes:
            sources.setdefault((f.name, f.stat().st_size), []).append(f)
    if not sources:
        return 0, 0
    if root is None or not root.is_dir():
        return 0, sum(size for (_, size), fs in sources.items() for _ in fs)
    shared = apart = 0
    for g in root.rglob("*"):
        if not g.is_file() or g.is_symlink():
            continue
        st = g.stat()
        for f in sources.get((g.name, st.st_size), []):
            fs = f.stat()
            if fs.st_ino == st.st_ino and fs.st_dev == st.st_dev:
                shared += st.st_size
                break
            if fs.st_dev != st.st_dev:
                apart += st.st_size
                break
            if filecmp.cmp(f, g, shallow=False):
                tmp = g.with_name(f".{g.name}.link")
                os.link(f, tmp)
                os.replace(tmp, g)
                shared += st.st_size
                break
    return shared, apart


def log_target_model_to(target, name: str, model_dir: Path, run_id: str, experiment_id: str, params: dict,
                        tags: dict) -> str:
    """Log the model into run ``run_id`` (no active run needed for the array model or a target that saves with
    a flavor's ``save_model``) with these params and tags on the LoggedModel; returns its model id."""
    import mlflow

    if uses_array_model(target):
        return log_pyfunc_from_template(name, ARRAY_MODEL, Path(model_dir), mlflow_requirements(target), run_id=run_id,
                                        experiment_id=experiment_id, params=params, tags=tags,
                                        width=item_width(target)).model_id
    if logs_without_run(target):
        return _log_saved(target, name, Path(model_dir), run_id, experiment_id, params, tags).model_id
    with mlflow.start_run(run_id=run_id):  # the flavors' log_model write into the active run
        model_id = log_target_model(target, name, Path(model_dir)).model_id
    mlflow.MlflowClient().set_logged_model_tags(model_id, tags)
    return model_id


def log_lm_model(target, name: str, model_dir: Path):
    """The LM target's logged model: a pyfunc "model from code" (``lm_model.py``) over the saved state dict and
    tokenizer (or ``save_pretrained`` folder): ``predict(pd.DataFrame({"prompt": [...]}), params={"max_new_tokens":
    64, "temperature": 1.0, "seed": 0})`` returns the continuations.  Nothing is pickled.  A pretrained backbone's
    lineage (base model, sha256, weights kind, bytes) is set as the logged model's tags and logged as run params."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "prompt")]),
        outputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "continuation")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", target.p["seq_len"]),
                            ParamSpec("temperature", "double", float(target.p["temperature"])),
                            ParamSpec("seed", "long", 0)]))
    base = target.base_
    lineage = target.backbone_.lineage(model_dir, base)
    if lineage:  # as run params too: the logged model copies them, and its page lists params (not tags)
        mlflow.log_params({k.replace("ouroboros.", "model."): v for k, v in lineage.items()})
    info = mlflow.pyfunc.log_model(name=name, python_model=str(LM_MODEL), artifacts={"model": str(model_dir)},
                                   signature=signature, pip_requirements=target.mlflow_requirements)
    if lineage:
        mlflow.MlflowClient().set_logged_model_tags(info.model_id, lineage)
        log.info("logged %s: %.2f MB (%s)", name, int(lineage["ouroboros.logged_bytes"]) / 1e6,
                 f"the LoRA adapter; base {base.get('model')} sha256 {str(base.get('sha256'))[:12]} referenced"
                 if lineage["ouroboros.weights"] == "adapter" else "all weights")
    return info
