"""A pyfunc model for any array-state target (logged as MLflow "models from code").

The model's artifacts are the target's saved folder (``target.json`` +
``state.npz``); nothing is pickled.  ``predict`` draws samples:

    model = mlflow.pyfunc.load_model("models:/<model_id>")
    model.predict(pandas.DataFrame({"n": [1000], "lam": [1.0], "seed": [0]}))

returns a DataFrame with a ``replicate`` column and one column per dimension
(x0, x1, ...), n rows per replicate.  Loading needs the ``ouroboros`` package
(this project, ``pip install -e .``).
"""
import mlflow
import numpy as np
import pandas as pd

from ouroboros.targets.base import Target


class ArrayTargetModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.target = Target.load(context.artifacts["model"]).drawing_points()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        row = model_input.iloc[0]
        n = int(row["n"])
        lam = float(row.get("lam", 1.0))
        seed = int(row.get("seed", 0))
        samples = self.target.sample(n, lam, np.random.default_rng(seed))
        r, m = samples.shape[:2]
        flat = samples.reshape(r * m, -1)
        out = pd.DataFrame(flat, columns=[f"x{i}" for i in range(flat.shape[1])])
        out.insert(0, "replicate", np.repeat(np.arange(r), m))
        return out


mlflow.models.set_model(ArrayTargetModel())
