import time

import numpy as np
import pytest
import torch

from selector import encoders
from selector.encoders import create_encoder, efficientnet_lite0


def test_raw_resizes_keeps_grey_or_rgb_and_scales():
    grey = create_encoder("raw", mode="L")
    rgb = create_encoder("raw", image_size=16, mode="RGB")
    image = np.full((8, 8), 255, np.uint8)
    assert grey.config == {"name": "raw", "image_size": 32, "mode": "L"} and grey.dim == 1024
    vector = grey.forward(torch.stack([grey.preprocess(image)]))
    assert vector.shape == (1, 1024) and np.allclose(vector, 1.0)
    assert rgb.forward(torch.stack([rgb.preprocess(image)])).shape == (1, 16 * 16 * 3)


def test_unknown_encoder_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown encoder 'not_a_model'.*efficientnet_lite0.*raw.*vitb16_dino"):
        create_encoder("not_a_model")


def test_aliases_point_at_timm_models_with_pretrained_weights():
    import timm

    pretrained = set(timm.list_pretrained())
    for alias, name in encoders.ALIASES.items():
        assert name in pretrained, alias


@pytest.fixture
def tiny_checkpoint(tmp_path):
    import timm

    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)
    path = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_timm_model_from_local_checkpoint_uses_its_weights_and_config(tiny_checkpoint):
    path, model = tiny_checkpoint
    encoder = create_encoder("test_efficientnet", checkpoint=str(path))
    assert encoder.dim == model.num_features
    assert encoder.preprocess.data_config["input_size"] == (3, 160, 160)  # from timm's pretrained_cfg
    image = np.random.default_rng(0).integers(0, 255, (20, 20), dtype=np.uint8)
    batch = torch.stack([encoder.preprocess(image)])
    model.reset_classifier(0)
    with torch.inference_mode():
        expected = model.eval()(batch).numpy()
    np.testing.assert_allclose(encoder.forward(batch), expected, rtol=1e-5, atol=1e-6)


def test_image_size_overrides_the_model_default(tiny_checkpoint):
    encoder = create_encoder("test_efficientnet", checkpoint=str(tiny_checkpoint[0]), image_size=64)
    assert encoder.preprocess(np.zeros((8, 8), np.uint8)).shape == (3, 64, 64)


def test_checkpoint_that_does_not_fit_says_why(tmp_path):
    import timm

    other = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    path = tmp_path / "other.pth"
    torch.save({"state_dict": other.state_dict()}, path)
    with pytest.raises(ValueError, match="does not fit the model — missing keys"):
        create_encoder("test_efficientnet", checkpoint=str(path))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        create_encoder("test_efficientnet", checkpoint=str(tmp_path / "junk.pth"))
    with pytest.raises(ValueError, match="does not exist"):
        create_encoder("test_efficientnet", checkpoint=str(tmp_path / "absent.pth"))


def test_hub_weights_without_network_fail_at_once_naming_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="`checkpoint` parameter"):
        create_encoder("test_resnet")
    assert time.perf_counter() - start < 10


@pytest.fixture(scope="module")
def lite0_classifier():
    return efficientnet_lite0(num_classes=1000).eval()


@pytest.mark.parametrize("photo, classes", [("chelsea", range(281, 286)), ("coffee", [967])])
def test_efficientnet_lite0_has_real_imagenet_weights(lite0_classifier, photo, classes):
    """Tabby/tiger cat for the cat photo and espresso for the coffee: proof the mapped weights are real."""
    import skimage.data
    from timm.data import resolve_data_config

    from selector.encoders import TimmPreprocess

    preprocess = TimmPreprocess(dict(resolve_data_config(model=lite0_classifier)))
    with torch.inference_mode():
        logits = lite0_classifier(preprocess(getattr(skimage.data, photo)())[None])
    assert int(logits.argmax()) in classes


def test_efficientnet_lite0_encoder_gives_pooled_features():
    encoder = create_encoder("efficientnet_lite0", image_size=64)
    assert encoder.dim == 1280 and encoder.config["name"] == "efficientnet_lite0"
    out = encoder.forward(torch.stack([encoder.preprocess(np.zeros((8, 8), np.uint8))] * 2))
    assert out.shape == (2, 1280) and np.isfinite(out).all()
