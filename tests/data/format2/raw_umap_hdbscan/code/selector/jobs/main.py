"""The `main` job, README's first command: select on a data set, then ask the champion about a few images."""

from __future__ import annotations

import numpy as np

from registry import batch
from selector.data import load_dataset
from selector.jobs.select import select_job
from selector.objective import DEFAULT_OBJECTIVE


def main_job(dataset: str = "digits", encoders: str = "raw,efficientnet_lite0", n_trials: int = 30,
             model_name: str = "digits-clusters", objective: str = DEFAULT_OBJECTIVE, workers: int = 0,
             labels: str = "auto"):
    """The README's demo: select on ``dataset``, then ask the registered champion about a few images."""
    board, _ = select_job(dataset=dataset, encoders=encoders, n_trials=n_trials, model_name=model_name,
                          objective=objective, workers=workers, labels=labels)
    model = batch.load(f"models:/{model_name}@champion")
    data = load_dataset(dataset, labels)
    picks = np.linspace(0, len(data) - 1, 5).astype(int)
    request = batch.request_frame(data, picks)
    answer = model.predict(request)
    answer.insert(0, "id", data.ids[picks])
    if data.labels is not None:
        answer.insert(1, "true_label", data.labels[picks])
    print(f"models:/{model_name}@champion on {len(picks)} images:")
    print(answer.to_string(index=False))
    return answer
