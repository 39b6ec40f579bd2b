"""MLflow "models from code" definitions used when logging generations, and a cheap way to log many of them.

``mlflow.pyfunc.log_model`` spends about 70 ms per model here re-deriving the same environment files
(requirements checks against the installed packages, conda.yaml, python_env.yaml) and copying the same code.
A tracking job logs up to hundreds of models of one kind, so :func:`log_pyfunc_from_template` builds that
folder once per process with ``mlflow.pyfunc.save_model`` and, for each model, copies it with the model's own
arrays, writes the model's identity into its ``MLmodel`` and logs it as a LoggedModel of the active run (the
same steps ``Model.log`` takes: create the LoggedModel with the run's params, upload its files, record it as
the run's output, mark it READY).  What MLflow stores is the same as ``mlflow.pyfunc.log_model``'s:
``mlflow.pyfunc.load_model("models:/<id>")`` loads it.
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

_TEMPLATES: dict[tuple, Path] = {}
#: the default "model from code" over a target's saved arrays
ARRAY_MODEL = Path(__file__).resolve().parent / "array_model.py"


def _template(code: Path, model_dir: Path, requirements: Sequence[str]) -> Path:
    import mlflow
    import mlflow.utils.environment as environment

    key = (str(code), tuple(requirements))
    if key not in _TEMPLATES:
        root = Path(tempfile.mkdtemp(prefix="ouroboros-pyfunc-"))
        shutil.copytree(model_dir, root / "model")  # its name is the artifact path MLmodel records: artifacts/model
        # the requirements are ours and installed (this job imports them); MLflow's check of them against every
        # installed distribution costs 2 s and only warns
        check = environment.warn_dependency_requirement_mismatches
        environment.warn_dependency_requirement_mismatches = lambda reqs: None
        try:
            mlflow.pyfunc.save_model(path=str(root / "template"), python_model=str(code),
                                     artifacts={"model": str(root / "model")}, pip_requirements=list(requirements))
        finally:
            environment.warn_dependency_requirement_mismatches = check
        _TEMPLATES[key] = root / "template"
    return _TEMPLATES[key]


def log_pyfunc_from_template(name: str, code: Path, model_dir: Path, requirements: Sequence[str],
                             run_id: Optional[str] = None, experiment_id: Optional[str] = None,
                             params: Optional[dict] = None, tags: Optional[dict] = None):
    """Log a pyfunc model from ``code`` over the files in ``model_dir`` as a LoggedModel output of run
    ``run_id`` (default: the active run, with its params); returns the LoggedModel (``.model_id``)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("log_pyfunc_from_template needs a run_id or an active MLflow run")
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        params = dict(run.data.params) if params is None else params
    template = _template(Path(code), Path(model_dir), requirements)
    client = mlflow.MlflowClient()
    logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, params=params, tags=tags,
                                            experiment_id=experiment_id)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model"
            shutil.copytree(template, local, ignore=shutil.ignore_patterns("artifacts"))
            shutil.copytree(model_dir, local / "artifacts" / "model")
            meta = Model.load(str(local / "MLmodel"))
            meta.model_uuid = meta.model_id = logged.model_id
            meta.run_id = run_id
            meta.artifact_path = logged.artifact_location
            meta.utc_time_created = str(datetime.now(timezone.utc).replace(tzinfo=None))
            meta.save(str(local / "MLmodel"))
            client.log_model_artifacts(logged.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except Exception:
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged
