"""The dataset reader, holdout split, fingerprint and synthetic generator on tiny real files."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ard_edge.cli.main import main
from ard_edge.data import (
    DEFECT_TYPES,
    LOCAL_DEFECTS,
    MVTecDataset,
    data_fingerprint,
    interpolation_for,
    list_samples,
    read_image,
    read_mask,
    resize_image,
    split_train_holdout,
    write_synthetic_dataset,
)
from ard_edge.data._synth import MIN_CHANGE_LEVELS, load_texture, plan_test_set, render_test_image
from ard_edge.errors import ConfigError, DataError


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def gray(h, w, value=100):
    return np.full((h, w), value, np.uint8)


@pytest.fixture
def layout(tmp_path):
    """A tiny MVTec AD folder: mixed formats and sizes, both mask namings, junk files."""
    root = tmp_path / "ds"
    write(root / "train/good/b.png", gray(20, 30))
    write(root / "train/good/a.jpg", np.full((40, 40, 3), (10, 20, 30), np.uint8))
    write(root / "train/good/c.BMP", gray(16, 16))
    (root / "train/good/notes.txt").write_text("not an image")
    write(root / "train/good/.hidden.png", gray(4, 4))
    write(root / "test/good/g.png", gray(24, 24))
    write(root / "test/crack/001.png", gray(24, 32))
    mask = np.zeros((24, 32), np.uint8)
    mask[4:10, 8:20] = 255
    write(root / "ground_truth/crack/001_mask.png", mask)
    write(root / "test/hole/002.JPG", np.full((30, 30, 3), 90, np.uint8))
    write(root / "ground_truth/hole/002.png", np.eye(30, dtype=np.uint8))  # 0/1 mask, plain stem
    return root


def test_list_samples_is_sorted_and_pairs_masks(layout):
    train = list_samples(layout, "train")
    assert [s.path.name for s in train] == ["a.jpg", "b.png", "c.BMP"]
    assert {(s.defect_type, s.label, s.mask_path) for s in train} == {("good", 0, None)}
    test = list_samples(layout, "test")
    assert [(s.defect_type, s.label, s.path.name) for s in test] == [
        ("crack", 1, "001.png"), ("good", 0, "g.png"), ("hole", 1, "002.JPG"),
    ]
    assert test[0].mask_path == layout / "ground_truth/crack/001_mask.png"
    assert test[2].mask_path == layout / "ground_truth/hole/002.png"


def test_dataset_loads_resized_rgb_images_and_bool_masks(layout):
    dataset = MVTecDataset(layout, "test", image_size=(12, 16))
    crack, good, hole = (dataset[i] for i in range(len(dataset)))
    for item in (crack, good, hole):
        assert item.image.dtype == np.uint8 and item.image.shape == (12, 16, 3)
        assert item.mask.dtype == bool and item.mask.shape == (12, 16)
    assert not good.mask.any() and good.label == 0
    assert crack.mask.sum() == 3 * 6  # the 6x12 box, halved by nearest interpolation
    assert hole.mask.any() and hole.defect_type == "hole" and hole.path.endswith("002.JPG")


def test_read_image_normalises_to_rgb_uint8(tmp_path):
    assert (read_image(write(tmp_path / "g.png", gray(3, 5, 77))) == 77).all()
    color = read_image(write(tmp_path / "c.png", np.full((2, 2, 3), (10, 20, 30), np.uint8)))  # BGR on disk
    assert color.shape == (2, 2, 3) and tuple(color[0, 0]) == (30, 20, 10)
    rgba = read_image(write(tmp_path / "a.png", np.full((2, 2, 4), (10, 20, 30, 0), np.uint8)))
    assert rgba.shape == (2, 2, 3) and tuple(rgba[0, 0]) == (30, 20, 10)
    deep = read_image(write(tmp_path / "d.tif", np.array([[0, 257 * 100, 65535]], np.uint16)))
    assert deep.dtype == np.uint8 and deep[0, :, 0].tolist() == [0, 100, 255]


def test_read_mask_binarises_and_resizes_with_nearest(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[:2, :2] = 255
    mask[3, 3] = 120  # below half of 255: stray compression noise
    assert read_mask(write(tmp_path / "m.png", mask)).sum() == 4
    assert read_mask(write(tmp_path / "one.png", (mask > 200).astype(np.uint8))).sum() == 4
    big = read_mask(tmp_path / "m.png", (8, 8))
    assert big.dtype == bool and big.sum() == 16


def test_resize_uses_area_to_shrink_and_linear_to_enlarge():
    assert interpolation_for((100, 100), (50, 50)) == cv2.INTER_AREA
    assert interpolation_for((100, 50), (50, 100)) == cv2.INTER_AREA
    assert interpolation_for((50, 50), (100, 100)) == cv2.INTER_LINEAR
    stripes = np.tile(np.array([0, 255], np.uint8), (4, 4))  # 4x8, alternating columns
    assert (resize_image(stripes, (2, 4)) == 128).all()  # averaged, not aliased
    assert resize_image(stripes, (4, 8)) is stripes


def test_reader_errors_name_what_to_fix(layout, tmp_path):
    with pytest.raises(DataError, match="dataset root not found: .*nowhere"):
        list_samples(tmp_path / "nowhere", "train")
    empty = tmp_path / "empty"
    (empty / "train/good").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images in .*train/good: expected MVTec AD layout train/good"):
        list_samples(empty, "train")
    (tmp_path / "no_train").mkdir()
    with pytest.raises(DataError, match="no images in .*train/good"):
        MVTecDataset(tmp_path / "no_train")
    with pytest.raises(DataError, match="no test set: .*test does not exist"):
        list_samples(empty, "test")
    with pytest.raises(ConfigError, match="split must be"):
        list_samples(layout, "val")
    write(layout / "test/crack/003.png", gray(8, 8))
    write(layout / "test/crack/004.png", gray(8, 8))
    expected = r"no mask for defect image .*003\.png \(and 1 more\): expected .*ground_truth/crack/003_mask\.png"
    with pytest.raises(DataError, match=expected):
        list_samples(layout, "test")


def test_unreadable_and_mismatched_files_fail_on_load(layout):
    (layout / "train/good/a.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot decode .*a\.jpg"):
        MVTecDataset(layout, "train")[0]
    write(layout / "ground_truth/crack/001_mask.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(DataError, match="mask .*001_mask.png is 5x5 but image .* is 32x24"):
        MVTecDataset(layout, "test")[0]


def test_holdout_split_is_deterministic_and_bounded():
    items = list(range(100))
    train, held = split_train_holdout(items, 0.1, seed=0)
    assert len(held) == 10 and sorted(train + held) == items and not set(train) & set(held)
    assert (train, held) == split_train_holdout(items, 0.1, seed=0)
    assert held != split_train_holdout(items, 0.1, seed=1)[1]
    assert len(split_train_holdout(items[:3], 0.0)[1]) == 1  # at least one
    assert len(split_train_holdout(items[:5], 0.5)[1]) == 2  # at most half
    with pytest.raises(DataError, match="at least 2 good training images"):
        split_train_holdout(items[:1])
    with pytest.raises(ConfigError, match="holdout_fraction"):
        split_train_holdout(items, 0.8)


def test_fingerprint_tracks_names_and_sizes_only(layout):
    before = data_fingerprint(layout)
    assert len(before) == 64 and before == data_fingerprint(layout)
    (layout / "README").write_text("outside train/ and test/")
    assert data_fingerprint(layout) == before
    write(layout / "test/good/h.png", gray(5, 5))
    assert data_fingerprint(layout) != before
    with pytest.raises(DataError, match="dataset root not found"):
        data_fingerprint(layout / "missing")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_dataset_is_deterministic_and_readable(tmp_path):
    kwargs = {"num_train": 3, "num_test": 10, "image_size": 64, "seed": 5}
    summary = write_synthetic_dataset(tmp_path / "a", **kwargs)
    write_synthetic_dataset(tmp_path / "b", **kwargs)
    write_synthetic_dataset(tmp_path / "c", **{**kwargs, "seed": 6})
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no staging left behind
    assert summary.num_test_good == 5 and sum(summary.num_defects.values()) == 5
    test = MVTecDataset(tmp_path / "a", "test", image_size=(64, 64))
    assert len(MVTecDataset(tmp_path / "a").samples) == 3 and len(test) == 10
    for item in test:
        assert item.mask.any() == (item.label == 1)
        # Local defects are small; global ones (texture, contrast, gradient) may cover the image.
        assert item.mask.mean() < (0.15 if item.defect_type in LOCAL_DEFECTS else 1.0 + 1e-9)


def test_synthetic_masks_are_exactly_the_changed_pixels(tmp_path):
    source = load_texture("brick")
    write_synthetic_dataset(tmp_path / "ds", num_train=1, num_test=8, image_size=64, seed=2)
    for index, item in enumerate(plan_test_set(8)):
        clean, image, mask = render_test_image(source, index, item.defect_type, (64, 64), seed=2)
        on_disk = cv2.imread(str(tmp_path / "ds/test" / item.defect_type / f"{item.name}.png"), -1)
        assert (on_disk == image).all()
        change = np.abs(image.astype(int) - clean)
        assert ((change > 0) == mask).all()
        if item.defect_type != "good":
            assert change[mask].min() >= MIN_CHANGE_LEVELS
            mask_path = tmp_path / "ds/ground_truth" / item.defect_type / f"{item.name}_mask.png"
            disk_mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
            assert ((disk_mask == 255) == mask).all()
    assert {item.defect_type for item in plan_test_set(14)} == {"good", *DEFECT_TYPES}


def test_synthetic_writer_refuses_to_clobber(tmp_path):
    out = tmp_path / "out"
    write_synthetic_dataset(out, num_train=1, num_test=0, image_size=32)
    with pytest.raises(DataError, match="is not empty: pass --overwrite"):
        write_synthetic_dataset(out, num_train=1, num_test=0, image_size=32)
    write_synthetic_dataset(out, num_train=2, num_test=0, image_size=32, overwrite=True)
    assert len(list((out / "train/good").iterdir())) == 2
    (out / "my_notes.txt").write_text("precious")
    with pytest.raises(DataError, match="refusing to replace .*'my_notes.txt'"):
        write_synthetic_dataset(out, num_train=1, num_test=0, image_size=32, overwrite=True)
    with pytest.raises(ConfigError, match="texture must be one of"):
        write_synthetic_dataset(tmp_path / "x", texture="marble")


def run_cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_command(tmp_path, capsys):
    args = ["synth", str(tmp_path / "ds"), "--num-train", "2", "--num-test", "4", "--image-size", "32"]
    code, out, _ = run_cli(args + ["--texture", "gravel"], capsys)
    assert code == 0
    assert out.strip().startswith(f"wrote {tmp_path / 'ds'}: 2 train, 4 test (2 good")
    code, _, err = run_cli(args, capsys)
    assert code == 1
    expected = f"error: {tmp_path / 'ds'} is not empty: pass --overwrite (overwrite=True) to replace it"
    assert err.strip().splitlines() == [expected]
    code, _, err = run_cli(args[:2] + ["--image-size", "8"], capsys)
    assert code == 2 and "Invalid value for '--image-size'" in err


def test_data_package_does_not_import_torch():
    code = "import sys, ard_edge.data; print([m for m in ('torch', 'sklearn', 'skimage') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_reads_the_magnetic_tile_dataset(magnetic_tile):
    train = list_samples(magnetic_tile, "train")
    test = list_samples(magnetic_tile, "test")
    assert len(train) == 600 and len(test) == 409
    assert sum(s.mask_path is not None for s in test) == sum(s.label for s in test) == 257
    dataset = MVTecDataset(magnetic_tile, "test", image_size=(64, 64))
    for index in (0, 200, 408):
        item = dataset[index]
        assert item.image.shape == (64, 64, 3) and item.mask.shape == (64, 64)


def test_test_set_without_ground_truth_folder_is_image_level(tmp_path):
    root = tmp_path / "image_level"
    write(root / "train/good/000.png", gray(8, 8))
    write(root / "test/good/001.png", gray(8, 8))
    write(root / "test/other/002.png", gray(8, 8))
    test = list_samples(root, "test")
    assert [(s.defect_type, s.label, s.mask_path) for s in test] == [("good", 0, None), ("other", 1, None)]
