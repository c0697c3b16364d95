"""Score heads: memory bank, global Gaussian, their fit, the fused score and the fitted threshold."""

import dataclasses

import numpy as np
import pytest
import torch

from ard_edge.data import GLOBAL_DEFECTS
from ard_edge.data._synth import load_texture, render_test_image
from ard_edge.metrics import fitted_tail_threshold, image_auroc, recall_at_false_reject_rate
from ard_edge.data import write_png
from ard_edge.model import ARDModel, ModelConfig, build_teacher, load_checkpoint
from ard_edge.model.heads import GlobalGaussian, PatchBank, greedy_coreset
from ard_edge.training import TrainConfig, train

CHANNELS = (4, 6, 8)


def _taps(batch: int, size: int = 8) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(batch)
    return [torch.randn(batch, c, size * 2 // (2**k), size * 2 // (2**k), generator=generator)
            for k, c in enumerate(CHANNELS)]


def test_bank_distance_is_the_nearest_bank_vector():
    bank = PatchBank(CHANNELS, size=50)
    bank.fit(torch.randn(400, 14))
    taps = _taps(2)
    got = bank(taps)
    patches = bank.embed(taps).permute(0, 2, 3, 1).reshape(-1, 14)
    want = torch.cdist(patches, bank.bank).min(dim=1).values.view(2, 1, 8, 8)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_coreset_covers_the_points_better_than_a_random_subset():
    points = torch.cat([torch.randn(2000, 8), torch.randn(20, 8) + 12.0])  # a rare, far cluster
    chosen = greedy_coreset(points, 40)
    assert len(set(chosen.tolist())) == 40
    assert (chosen >= 2000).any()  # the rare cluster is in the bank
    radius = torch.cdist(points, points[chosen]).min(dim=1).values.max()
    random = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:40]
    assert radius < torch.cdist(points, points[random]).min(dim=1).values.max()


def test_gaussian_is_the_shrunk_mahalanobis_distance():
    from sklearn.covariance import LedoitWolf

    head = GlobalGaussian(CHANNELS)
    train = _taps(64)
    head.fit(head.pool(train))
    test = _taps(5)
    want = np.sqrt(LedoitWolf().fit(head.pool(train).double().numpy()).mahalanobis(head.pool(test).double().numpy()))
    np.testing.assert_allclose(head(test).numpy(), want, rtol=1e-4)


def test_gaussian_of_means_and_deviations_pools_each_taps_unbiased_std():
    head = GlobalGaussian(CHANNELS, "mean+std")
    taps = _taps(3)
    pooled = head.pool(taps)
    want = torch.cat([t.mean(dim=(2, 3)) for t in taps] + [t.std(dim=(2, 3)) for t in taps], dim=1)
    torch.testing.assert_close(pooled, want, rtol=1e-5, atol=1e-6)
    assert head.mean.numel() == 2 * sum(CHANNELS) == pooled.shape[1]


def test_an_unknown_gaussian_feature_set_names_the_key_and_the_choices():
    from ard_edge.config import from_dict
    from ard_edge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.gaussian_features: choose one of mean, mean\+std"):
        from_dict(ModelConfig, {"gaussian_features": "max"}, "model")


def test_fitted_tail_reads_a_rate_the_sample_cannot_show():
    rng = np.random.default_rng(0)
    good = rng.gumbel(10.0, 2.0, size=60)
    threshold = fitted_tail_threshold(good, 0.005)
    true_quantile = 10.0 - 2.0 * np.log(-np.log(0.995))
    assert threshold > good.max()  # the empirical 0.5% quantile of 60 images is their maximum
    assert abs(threshold - true_quantile) < 0.2 * true_quantile
    assert fitted_tail_threshold(good, 0.0) == good.max()
    fresh = rng.gumbel(10.0, 2.0, size=20000)
    assert np.mean(fresh > threshold) < 0.02


def test_recall_at_a_false_reject_rate():
    labels = np.array([0] * 100 + [1] * 4)
    scores = np.concatenate([np.arange(100.0), [98.5, 99.5, 200.0, 10.0]])
    # 1% of 100 good images may be rejected: the threshold is the second highest good score, 98.
    assert recall_at_false_reject_rate(labels, scores, 0.01) == 0.75


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory):
    """A 64 px model trained (5 epochs) on 48 good brick renders, its heads fitted."""
    source = load_texture("brick")
    root = tmp_path_factory.mktemp("good")
    for i in range(48):
        write_png(root / "train" / "good" / f"{i:03d}.png", render_test_image(source, i, "good", (64, 64), seed=3)[1])
    model_config = ModelConfig(image_size=64, distillation=True, bank_size=1000)
    config = TrainConfig(data=root, out=root / "run", model=model_config, epochs=5)
    model, _ = load_checkpoint(train(config).checkpoint)
    return model, source


def test_fitted_heads_are_z_scored_on_the_holdout(fitted_model):
    model, _ = fitted_model
    assert model.config.heads == ("distillation", "bank", "gaussian")
    assert torch.all(model.head_std > 0) and torch.all(model.anomaly_map.scale_span > 0)
    assert not torch.equal(model.bank.bank, torch.zeros_like(model.bank.bank))


@pytest.mark.parametrize("defect", GLOBAL_DEFECTS)
def test_the_model_finds_global_defects(fitted_model, defect):
    model, source = fitted_model
    good = [render_test_image(source, 100 + i, "good", (64, 64), seed=3)[1] for i in range(16)]
    bad = [render_test_image(source, 200 + i, defect, (64, 64), seed=3)[1] for i in range(16)]
    frames = torch.from_numpy(np.stack([np.repeat(g[..., None], 3, axis=2) for g in good + bad]))
    with torch.no_grad():
        _, scores = model.predict(frames)
    # Chance is 0.5; some contrast changes (a small region at 0.5x on brick) are barely visible.
    assert image_auroc([0] * 16 + [1] * 16, scores.numpy()) >= 0.8


def test_a_model_without_heads_is_plain_reverse_distillation():
    config = dataclasses.replace(ModelConfig(image_size=64), distillation=True, bank_size=0, gaussian=False)
    model = ARDModel(config, build_teacher(config.backbone)).eval()
    assert model.config.heads == ("distillation",) and model.bank is None and model.gaussian is None
    frames = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        amap, score = model.predict(frames)
        want = model.anomaly_map(*model(frames))
    torch.testing.assert_close(amap, want)


def test_the_default_model_is_the_teacher_with_its_heads(tmp_path):
    source = load_texture("gravel")
    for i in range(24):
        write_png(tmp_path / "train" / "good" / f"{i:03d}.png", render_test_image(source, i, "good", (64, 64), seed=1)[1])
    result = train(TrainConfig(data=tmp_path, out=tmp_path / "run", model=ModelConfig(image_size=64)))
    model, header = load_checkpoint(result.checkpoint)
    assert model.config.heads == ("bank", "gaussian") and model.decoder is None
    assert result.completed and header["training"]["epochs_done"] == 0 and header["training"]["final_loss"] is None
    assert header["threshold_rule"]["method"] == "gumbel-moments" and header["threshold_rule"]["holdout_images"] == 2


def test_a_model_needs_a_head():
    from ard_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a score head"):
        ModelConfig(bank_size=0, gaussian=False).validate()


@pytest.mark.parametrize("fusion", ["sum", "max"])
def test_the_gaussian_joins_the_local_map_at_its_weight_by_the_configured_fusion(fitted_model, fusion):
    model, _ = fitted_model
    fused_model = ARDModel(dataclasses.replace(model.config, gaussian_fusion=fusion), model.teacher).eval()
    fused_model.load_state_dict(model.state_dict())
    frames = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        outputs = fused_model.head_outputs(frames)
        z = fused_model.z_scores(outputs)
        fused = fused_model.fuse(outputs)
    local, gaussian = z["distillation"] + z["bank"], fused_model.config.gaussian_weight * z["gaussian"]
    want = {"sum": local + gaussian, "max": torch.maximum(local, gaussian)}
    torch.testing.assert_close(fused, want[fusion])
    # The two fusions differ on these frames, so the option is not ignored.
    assert not torch.allclose(want["sum"], want["max"])


def test_an_unknown_gaussian_fusion_names_the_key_and_the_choices():
    from ard_edge.config import from_dict
    from ard_edge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.gaussian_fusion: choose one of sum, max"):
        from_dict(ModelConfig, {"gaussian_fusion": "mean"}, "model")


def test_a_checkpoint_from_before_the_weight_the_fusion_and_the_blur_keeps_their_old_values(fitted_model, tmp_path):
    import json

    from ard_edge.model import read_metadata, save_checkpoint

    model, _ = fitted_model
    path = tmp_path / "old.ckpt"
    save_checkpoint(path, model, {"threshold": 1.0, "score_stats": {"min": 0.0}, "normalization": {}})
    header = read_metadata(path)
    assert header["model"]["gaussian_weight"] == model.config.gaussian_weight
    # Rewrite the header as an older ard-edge wrote it: without these keys.
    from safetensors.torch import load_file, save_file

    for key in ("gaussian_weight", "gaussian_fusion", "gaussian_features", "blur_sigma"):
        del header["model"][key]
    state = load_file(str(path))
    # An older model's Gaussian pooled the means only: its buffers have that size.
    dim = state["gaussian.mean"].numel() // 2
    state["gaussian.mean"], state["gaussian.precision"] = torch.zeros(dim), torch.eye(dim)
    save_file(state, str(path), metadata={"ard_edge": json.dumps(header)})
    config = load_checkpoint(path)[0].config
    assert (config.gaussian_weight, config.gaussian_fusion, config.gaussian_features, config.blur_sigma) == (
        1.0, "sum", "mean", 4.0)


def test_a_flip_bank_covers_the_mirror_images_of_the_training_images():
    from types import SimpleNamespace

    from ard_edge.training.heads import fit_heads
    from _models import random_frames

    lite0 = build_teacher("efficientnet_lite0")
    image = torch.from_numpy(random_frames(1, 64, 3, seed=3))  # a ramp: its mirror image differs
    data = SimpleNamespace(train=image, holdout=torch.cat([image, image]))
    farthest = {}
    for augment, copies in (("none", 1), ("flip", 3)):
        config = ModelConfig(backbone="efficientnet_lite0", image_size=64, bank_size=64 * copies, gaussian=False,
                             bank_augment=augment)
        model = ARDModel(config, lite0).eval()
        fit_heads(model, None, data, 8, "cpu")  # the bank holds every patch it was given
        with torch.no_grad():
            farthest[augment] = float(model.bank(model.teacher(model.preprocess(image.flip(2)))).max())
    assert farthest["flip"] < 0.05 * farthest["none"]
