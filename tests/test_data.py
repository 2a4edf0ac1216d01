import logging

import numpy as np
import pandas as pd
import pytest

from selector.stages.data import load_dataset

from selector.stages.data import encode_png as png_bytes


def test_digits_is_builtin_with_labels_and_stable_ids():
    data = load_dataset("digits")
    assert data.kind == "images" and len(data) == 1797
    assert data.images.mode == "L" and data.images[0].shape == (8, 8) and data.images[0].dtype == np.uint8
    assert data.images[0].max() <= 255 and data.images[0].max() > 16  # rescaled from 0..16
    assert sorted(set(data.labels.tolist())) == list(range(10))
    assert len(set(data.ids)) == 1797
    assert load_dataset("digits").fingerprint == data.fingerprint


def test_folder_with_subfolders_is_labelled_by_subfolder(digit_folder):
    data = load_dataset(digit_folder)
    assert data.kind == "images" and len(data) == 30
    assert sorted(set(data.labels)) == ["0", "1", "2"]
    assert data.ids[0] == "0/" + sorted(p.name for p in (digit_folder / "0").iterdir())[0]
    assert data.images.mode == "L"
    assert data.images[3].shape == (8, 8)


def test_flat_folder_has_no_labels_and_colour_mode(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        (tmp_path / f"img{i}.png").write_bytes(png_bytes(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)))
    data = load_dataset(tmp_path)
    assert data.labels is None and data.images.mode == "RGB" and data.images[0].shape == (10, 12, 3)


def test_mixed_folder_loads_without_labels_and_warns(digit_folder, caplog):
    (digit_folder / "loose.png").write_bytes((digit_folder / "0" / next((digit_folder / "0").iterdir()).name).read_bytes())
    with caplog.at_level(logging.WARNING):
        data = load_dataset(digit_folder)
    assert data.labels is None and len(data) == 31
    assert "without labels" in caplog.text


def test_content_change_changes_fingerprint(digit_folder):
    before = load_dataset(digit_folder).fingerprint
    victim = next((digit_folder / "1").iterdir())
    victim.write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    assert load_dataset(digit_folder).fingerprint != before


def test_unreadable_file_is_skipped_at_load_and_counted(digit_folder, caplog):
    (digit_folder / "2" / "garbage.png").write_bytes(b"this is not an image")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(digit_folder)
    assert len(data) == 30 and data.info["n_unreadable"] == 1
    assert "garbage.png" in caplog.text


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no image files"),
    (lambda p: (p / "a.png").write_bytes(b"nope") and p, "none readable"),
    (lambda p: p / "missing", "neither a built-in name"),
    (lambda p: (p / "data.txt").write_text("1,2") and p / "data.txt", "unsupported suffix"),
])
def test_bad_sources_raise_clear_errors(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_dataset(target)


@pytest.fixture
def blobs():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=40, centers=3, n_features=5, random_state=0)
    return X.astype(np.float32), y


def test_npy_npz_csv_parquet(tmp_path, blobs):
    X, y = blobs
    np.save(tmp_path / "a.npy", X)
    np.savez(tmp_path / "b.npz", X=X, y=y)
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(5)]).assign(label=y)
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    npy, npz, csv, parquet = (load_dataset(tmp_path / n) for n in ("a.npy", "b.npz", "c.csv", "d.parquet"))
    assert npy.labels is None and npy.vectors.shape == (40, 5) and npy.kind == "vectors"
    for data in (npz, csv, parquet):
        np.testing.assert_allclose(data.vectors, X, rtol=1e-6)
        np.testing.assert_array_equal(data.labels, y)
    assert csv.feature_names == [f"c{i}" for i in range(5)]
    assert len({npy.fingerprint, npz.fingerprint, csv.fingerprint}) == 3


def test_csv_with_text_column_names_it(tmp_path, blobs):
    X, _ = blobs
    pd.DataFrame(X).assign(colour="red").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"non-numeric feature column\(s\) \['colour'\]"):
        load_dataset(tmp_path / "t.csv")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vectors_are_refused_with_the_row(tmp_path, blobs, bad):
    X, _ = blobs
    X[7, 2] = bad
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match="NaN/inf.*first bad row: 7"):
        load_dataset(tmp_path / "x.npy")


def test_npz_without_X_and_too_few_points(tmp_path, blobs):
    X, _ = blobs
    np.savez(tmp_path / "w.npz", Z=X)
    with pytest.raises(ValueError, match="no array named 'X'"):
        load_dataset(tmp_path / "w.npz")
    np.save(tmp_path / "tiny.npy", X[:3])
    with pytest.raises(ValueError, match="3 point"):
        load_dataset(tmp_path / "tiny.npy")


def test_a_folder_of_any_format_pillow_decodes_is_a_data_set(tmp_path):
    """PGM/PPM (scientific cameras, classic benchmarks), ICO, TIFF, … beside PNG and JPEG."""
    from PIL import Image

    from selector.stages.data import IMAGE_SUFFIXES, load_dataset

    rng = np.random.default_rng(0)
    for label, suffix in (("grey", ".pgm"), ("colour", ".ppm"), ("icons", ".ico"), ("scans", ".tif")):
        (tmp_path / label).mkdir()
        for i in range(3):
            mode = "L" if suffix == ".pgm" else "RGB"
            array = rng.integers(0, 255, (16, 16) if mode == "L" else (16, 16, 3), dtype=np.uint8)
            Image.fromarray(array, mode).save(tmp_path / label / f"{i}{suffix}")
    data = load_dataset(str(tmp_path))
    assert len(data) == 12 and sorted(set(data.labels)) == ["colour", "grey", "icons", "scans"]
    assert data.images[0].dtype == np.uint8
    assert {".pgm", ".ppm", ".pbm", ".ico", ".tif", ".png", ".jpg", ".webp"} <= IMAGE_SUFFIXES
    assert not {".h5", ".eps"} & IMAGE_SUFFIXES  # identified by Pillow, not decoded by it


class TestLabels:
    """``labels``: the folder's sub-folders (``auto``), none at all, or a CSV the user wrote."""

    def test_none_drops_the_sub_folder_names_and_auto_keeps_them(self, digit_folder):
        assert load_dataset(str(digit_folder), "none").labels is None
        assert sorted(set(load_dataset(str(digit_folder), "auto").labels)) == ["0", "1", "2"]

    def test_a_csv_of_id_and_label_labels_every_point_by_its_id(self, digit_folder, tmp_path):
        data = load_dataset(str(digit_folder))
        mine = ["even" if int(i.split("/")[0]) % 2 == 0 else "odd" for i in data.ids]
        pd.DataFrame({"id": data.ids, "label": mine}).iloc[::-1].to_csv(tmp_path / "mine.csv", index=False)
        relabelled = load_dataset(str(digit_folder), str(tmp_path / "mine.csv"))
        assert list(relabelled.labels) == mine and list(relabelled.ids) == list(data.ids)
        assert relabelled.fingerprint == data.fingerprint  # the embeddings do not depend on the labels

    def test_a_csv_missing_points_or_columns_is_refused_naming_the_problem(self, digit_folder, tmp_path):
        data = load_dataset(str(digit_folder))
        pd.DataFrame({"id": data.ids[1:], "label": 0}).to_csv(tmp_path / "short.csv", index=False)
        with pytest.raises(ValueError, match=r"no label for 1 of the 30 points .*\(e\.g\. '0/"):
            load_dataset(str(digit_folder), str(tmp_path / "short.csv"))
        pd.DataFrame({"file": data.ids, "label": 0}).to_csv(tmp_path / "columns.csv", index=False)
        with pytest.raises(ValueError, match="needs columns 'id' and 'label'"):
            load_dataset(str(digit_folder), str(tmp_path / "columns.csv"))
        for bad in ("sometimes", str(tmp_path / "absent.csv"), str(digit_folder)):
            with pytest.raises(ValueError, match="`labels` is 'auto'"):
                load_dataset(str(digit_folder), bad)

    def test_vector_rows_are_labelled_by_their_row_number(self, tmp_path):
        np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(6, 2)))
        pd.DataFrame({"id": [str(i) for i in range(6)], "label": list("aabbcc")}).to_csv(tmp_path / "y.csv", index=False)
        assert list(load_dataset(str(tmp_path / "v.npy"), str(tmp_path / "y.csv")).labels) == list("aabbcc")
