import logging

import numpy as np
import pytest

from selector.stages import embedding
from selector.stages.data import load_dataset
from selector.stages.embedding import embed


def test_raw_digits_and_the_cache_makes_the_second_call_free(monkeypatch, cache_dir):
    data = load_dataset("digits")
    first = embed(data, "raw", progress=False)
    assert first.vectors.shape == (1797, 1024) and not first.cache_hit
    assert first.cache_path.parent == cache_dir / "embeddings" and first.cache_path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder was built again")

    monkeypatch.setattr(embedding, "create_encoder", refuse)
    second = embed(data, "raw", progress=False)
    assert second.cache_hit
    np.testing.assert_array_equal(second.vectors, first.vectors)
    np.testing.assert_array_equal(second.labels, data.labels)
    with pytest.raises(AssertionError, match="built again"):
        embed(data, "raw", image_size=16, progress=False)  # another identity: not a hit


def test_timm_model_embeds_a_folder_with_workers(digit_folder, tmp_path):
    import timm
    import torch

    path = tmp_path / "tiny.pth"
    torch.save(timm.create_model("test_vit", pretrained=False).state_dict(), path)
    data = load_dataset(digit_folder)
    result = embed(data, "test_vit", checkpoint=str(path), batch_size=8, num_workers=2, progress=False)
    assert result.vectors.shape[0] == 30 and np.isfinite(result.vectors).all()
    assert result.encoder["checkpoint_sha256"] and list(result.ids) == list(data.ids)


def test_corrupt_image_among_good_ones_is_skipped_and_counted(digit_folder, caplog):
    victim = sorted((digit_folder / "1").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])  # a header that opens, pixels that do not decode
    data = load_dataset(digit_folder)
    assert len(data) == 30
    with caplog.at_level(logging.WARNING):
        result = embed(data, "raw", progress=False)
    assert result.vectors.shape[0] == 29 and result.skipped == [f"1/{victim.name}"]
    assert f"1/{victim.name}" not in set(result.ids) and len(result.labels) == 29
    assert "skipped 1 of 30" in caplog.text
    assert embed(data, "raw", progress=False).skipped == result.skipped  # the cache keeps the count


def test_all_corrupt_fails_and_writes_no_cache(digit_folder, cache_dir):
    for path in digit_folder.rglob("*.png"):
        path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="none of the 30 image"):
        embed(load_dataset(digit_folder), "raw", progress=False)
    assert not list(cache_dir.rglob("*.npz"))


def test_vectors_go_through_none_and_images_need_an_image_encoder(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(10, 4)))
    vectors = load_dataset(tmp_path / "v.npy")
    assert embed(vectors, "none").vectors.shape == (10, 4)
    with pytest.raises(ValueError, match="encoder 'raw' takes images, but data set 'v' holds vectors; "
                                         "encoders for vectors: none"):
        embed(vectors, "raw")
    with pytest.raises(ValueError, match="encoder 'none' takes vectors, but data set 'digits' holds images; "
                                         "encoders for images: raw, efficientnet_lite0, .*any timm model name"):
        embed(load_dataset("digits"), "none")
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 1; got 0"):
        embed(load_dataset("digits"), "raw", batch_size=0)
