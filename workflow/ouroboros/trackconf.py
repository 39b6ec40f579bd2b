"""The tracking settings, apart from the MLflow logging (:mod:`ouroboros.tracking`): where the tracking backend
is (``tracking.uri`` made absolute, the artifact location, the SQLite file) and how the UI is addressed.  The
plan, the preflight and the CLI read these without importing MLflow or the logging code.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

DEFAULT_DB = "results/mlflow.db"
DEFAULT_ARTIFACTS = "results/mlartifacts"


class TrackingError(RuntimeError):
    """The tracking backend cannot be used; the message names the URI."""


# -- configuration -----------------------------------------------------------------
def resolve_uri(uri: Optional[str], root: str | os.PathLike) -> str:
    """An absolute tracking URI: SQLite paths are made absolute against ``root``."""
    root = Path(root)
    if not uri:
        return f"sqlite:///{(root / DEFAULT_DB).resolve()}"
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        return f"sqlite:///{(path if path.is_absolute() else root / path).resolve()}"
    if uri.startswith(("http://", "https://", "databricks")):
        return uri.rstrip("/")
    if "://" not in uri:
        return f"sqlite:///{(root / uri).resolve()}"
    raise TrackingError(f"unsupported tracking.uri {uri!r}: use sqlite:///path/to/mlflow.db or http(s)://host:port "
                        "(MLflow 3's file store is deprecated)")


def resolve_artifacts(artifacts: Optional[str], uri: str, root: str | os.PathLike) -> Optional[str]:
    """Where a new experiment keeps artifacts: beside a SQLite database, or the server's choice."""
    if artifacts:
        return artifacts if "://" in artifacts else str((Path(root) / artifacts).resolve())
    if uri.startswith("sqlite:///"):
        return str(Path(sqlite_path(uri)).parent / "mlartifacts")
    return None


def sqlite_path(uri: str) -> Optional[str]:
    return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None


#: MLflow UI: open the experiment as classical model training (not the GenAI "Evaluations" view)
EXPERIMENT_KIND = "custom_model_development"
#: the query that opens MLflow 3's UI in its model-training view (what its "Model training" toggle sets)
UI_VIEW = "workflowType=machine_learning"
