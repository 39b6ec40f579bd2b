"""A pyfunc model for the LM target (logged as MLflow "models from code").

The artifacts are the saved model folder (``model.pt`` state dict,
``tokenizer.json``, ``target.json``; a pretrained model's ``save_pretrained``
folder, or its LoRA adapter, whose base is loaded from the path and checked
against the sha256 in ``target.json``); nothing is pickled.  ``predict``
continues prompts:

    model = mlflow.pyfunc.load_model("models:/<model_id>")
    model.predict(pandas.DataFrame({"prompt": ["The for statement", "A class"]}),
                  params={"max_new_tokens": 64, "temperature": 1.0, "seed": 0})

returns a DataFrame with ``prompt`` and ``continuation`` columns.  Loading
needs the ``ouroboros`` package (this project, ``pip install -e .``).
"""
import mlflow
import numpy as np
import pandas as pd

from ouroboros.targets.base import Target


class LMModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.target = Target.load(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        params = params or {}
        t = self.target
        prompts = [str(p) for p in model_input["prompt"]]
        ids = [t.tokenizer.encode(p) or [t.eot_id] for p in prompts]
        new = int(params.get("max_new_tokens", t.p["seq_len"]))
        keep = max(1, t.p["block_size"] + 1 - new)
        rng = np.random.default_rng(int(params.get("seed", 0)))
        out = []
        for p in ids:  # prompts differ in length: one at a time
            prompt = np.asarray(p[-keep:], dtype=np.int64)[None]
            _, cont = t.generate_tokens(1, 1.0, rng, prompts=prompt, max_new=new,
                                        temperature=float(params.get("temperature", t.p["temperature"])))
            out.append(t.tokenizer.decode(cont[0]))
        return pd.DataFrame({"prompt": prompts, "continuation": out})


mlflow.models.set_model(LMModel())
