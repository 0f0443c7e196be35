"""The trained model as an MLflow pyfunc, so the registry holds a loadable model (edge code only).

The model itself stays in skops files (artifact ``model_dir``); this wrapper loads them through
``load_model`` and predicts a DataFrame with at least a ``text`` column.
"""

from __future__ import annotations

import mlflow.pyfunc


class OpinionsPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from pipeline.classify import load_model
        from pipeline.config import load_domain

        self._model = load_model(Path(context.artifacts["model_dir"]))
        self._domain = load_domain()

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from pipeline.classify import predict
        from pipeline.normalize import normalise

        frame = pd.DataFrame(model_input).copy()
        for col in ("opinion_id", "reason", "body", "stated_candidate"):
            if col not in frame.columns:
                frame[col] = ""
        out = predict(self._model, normalise(frame), self._domain)
        return out[["candidate_id", "candidate_confidence", "category", "category_confidence", "needs_review", "category_reason"]]
