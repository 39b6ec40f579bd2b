"""``mlflow ui --app-name ouroboros``: MLflow's own server, whose UI opens a study in its model-training view.

MLflow 3.17's UI routes an experiment by the *workflow type* it holds in the browser (``localStorage`` key
``mlflow.workflowType_v1``, else the address's ``workflowType`` parameter), not by the experiment's
``mlflow.experimentKind`` tag; a browser that never chose starts in the GenAI view, where clicking a study opens
its traces "Overview".  This app serves MLflow's page with one line that records the model-training view as the
choice where the browser has made none (a user who switched to GenAI keeps it), so that the experiments list,
a click on the study and every later visit show runs and models; and that keeps the assistant's chat panel
from opening itself on the first visit (its button still opens it).  Everything else is MLflow's server unchanged
(registered as the ``mlflow.app`` entry point ``ouroboros`` in pyproject.toml).
"""
from __future__ import annotations

import os

from flask import Response
from mlflow.server import app as flask_app

#: what the UI reads (localStorage key -> value), set only where the browser holds no choice: the view (the value
#: of its "Model training" switch), and the assistant's chat panel taken as already opened once (else it opens
#: itself beside the study on the first visit)
DEFAULTS = {"mlflow.workflowType_v1": '"machine_learning"', "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
SCRIPT = "<script>try{%s}catch(e){}</script>" % "".join(
    f"if(localStorage.getItem('{k}')===null)localStorage.setItem('{k}','{v}');" for k, v in DEFAULTS.items())


def page(html: str) -> str:
    """MLflow's page with the choice recorded before its scripts run."""
    return html.replace("<head>", "<head>" + SCRIPT, 1)


def _serve():
    index = os.path.join(flask_app.static_folder, "index.html")
    with open(index, encoding="utf-8") as f:
        html = page(f.read())
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})


flask_app.view_functions["serve"] = _serve  # read at each request, so the ASGI app below serves it too

from mlflow.server.fastapi_app import app  # noqa: E402, F401 (MLflow's ASGI app around the Flask app: what uvicorn runs)
