"""``predict`` on a whole data set: one file the model refuses costs only its own row."""

import base64
import io

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from PIL import Image

from registry.batch import predict_dataset
from selector.stages.data import load_dataset


class Picky:
    """A stand-in for the served model: refuses a batch holding an image it cannot decode, as the
    served model does (HTTP 400), and answers the others by brightness."""

    def __init__(self):
        self.requests = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.requests.append(len(frame))
        clusters = []
        for row, value in enumerate(frame["image"]):
            try:
                image = np.asarray(Image.open(io.BytesIO(base64.b64decode(value))).convert("L"))
            except OSError as exc:
                raise MlflowException(f"row {row}: not a decodable image ({exc})") from None
            clusters.append(int(image.mean() > 127))
        return pd.DataFrame({"cluster": clusters, "confidence": 0.5})


def test_a_refused_file_gets_its_own_error_row_and_every_other_point_its_answer(tmp_path):
    rng = np.random.default_rng(0)
    for label, level in (("dark", 20), ("light", 230)):
        (tmp_path / label).mkdir()
        for i in range(5):
            pixels = np.clip(level + rng.normal(0, 10, (64, 64)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    whole = (tmp_path / "light" / "4.png").read_bytes()
    (tmp_path / "light" / "4.png").write_bytes(whole[: len(whole) // 2])  # a valid header, a truncated body
    data = load_dataset(str(tmp_path))
    model = Picky()
    table = predict_dataset(model, data, batch_size=4, progress=False)
    bad = table["id"] == "light/4.png"
    assert table.loc[bad, "cluster"].item() == -1 and table.loc[bad, "confidence"].item() == 0
    assert "not a decodable image" in table.loc[bad, "error"].item()
    good = table[~bad]
    assert (good["error"] == "").all() and (good["cluster"] == (good["label"] == "light").astype(int)).all()
    assert model.requests == [4, 4, 2, 1, 1]  # the last batch was refused whole, then asked row by row
