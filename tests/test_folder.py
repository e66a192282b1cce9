"""Tests of the streamed ``imagefolder`` dataset (distilnas.data.folder), gather and the stream loader, on a
tiny fake ImageNet tree (3 classes x 6 train + 2 val images, PNG and JPEG of different sizes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from distilnas.cli import main  # noqa: E402
from distilnas.data import (  # noqa: E402
    DataConfig, DataError, ImageSource, StreamLoader, TensorLoader, gather, load_dataset, make_loader,
)
from distilnas.data.folder import IMAGENET_MEAN, IMAGENET_STD, random_resized_crop_box  # noqa: E402
from distilnas.train.checkpoint import load_checkpoint  # noqa: E402
from distilnas.train.loop import build_run, resolve_config, run_search  # noqa: E402

CLASSES = ("n01_cat", "n02_dog", "n03_fox")  # sorted: labels 0, 1, 2
SIZES = ((40, 30), (25, 50), (64, 64), (33, 47), (80, 36), (36, 36))  # (width, height) of the train images
EXTS = (".png", ".JPEG", ".jpg", ".jpeg", ".png", ".JPEG")
N_TRAIN, N_VAL = len(CLASSES) * len(SIZES), len(CLASSES) * 2

# A tiny MobileNet on 3x32x32 inputs, 3 classes (the fmnist16 preset narrowed, as in test_dna.py).
SPACE: dict[str, Any] = {"name": "mobilenet", "preset": "fmnist16", "in_channels": 3, "input_size": 32,
                         "num_classes": 3, "stem_channels": 8, "first_channels": 8, "widths": [8, 16, 16],
                         "depths": [2, 2, 2], "strides": [2, 2, 1], "kernels": [3, 5], "expansions": [1, 2],
                         "last_channels": 16, "head_channels": 16, "width_mult": 1.0}
ARCH = "k3e1-k5e2_k3e2-id_k5e1-k3e1"


def rgb(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A random-colour image: a random base colour plus noise."""
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_tree(root: Path, seed: int = 0) -> Path:
    """root/{train,val}/<class>/<image>; a grayscale PNG and a non-image file thrown in."""
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        for i, ((w, h), ext) in enumerate(zip(SIZES, EXTS)):
            (root / "train" / c).mkdir(parents=True, exist_ok=True)
            rgb(rng, w, h).save(root / "train" / c / f"img{i}{ext}", format="PNG" if ext == ".png" else "JPEG")
        (root / "val" / c).mkdir(parents=True, exist_ok=True)
        rgb(rng, 50, 40).save(root / "val" / c / "v0.JPEG", format="JPEG")
        rgb(rng, 30, 45).convert("L").save(root / "val" / c / "v1.png")  # grayscale: decoded as RGB
    (root / "train" / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("imagenet"))


def data_cfg(root: Path, **kw: Any) -> DataConfig:
    return DataConfig(**{"name": "imagefolder", "root": str(root), "val_size": 4, "image_size": 32,
                         "num_workers": 0, **kw})


def normalised(colour: tuple[int, int, int] | np.ndarray) -> torch.Tensor:
    c = torch.as_tensor(np.asarray(colour), dtype=torch.float32) / 255.0
    return (c - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


# -- the dataset ------------------------------------------------------------------------------------
def test_load_dataset_gives_lazy_sources(tree):
    s = load_dataset(data_cfg(tree))
    assert isinstance(s.train_x, ImageSource) and isinstance(s.val_x, ImageSource)
    assert s.num_classes == 3 and s.input_shape == (3, 32, 32)
    assert s.train_x.shape == (N_TRAIN - 4, 3, 32, 32) and s.train_x.dim() == 4
    assert len(s.val_x) == len(s.val_y) == 4 and len(s.test_x) == len(s.test_y) == N_VAL
    # labels follow the sorted class folders, whatever the file
    for x, y in ((s.train_x, s.train_y), (s.val_x, s.val_y), (s.test_x, s.test_y)):
        assert [CLASSES[int(label)] for label in y] == [Path(p).parent.name for p in x.paths]
    assert not any(p.endswith(".txt") for p in s.train_x.paths)
    # a seeded, disjoint split of the training folder, the same every time
    train, val = set(s.train_x.paths), set(s.val_x.paths)
    assert not train & val and len(train | val) == N_TRAIN
    again = load_dataset(data_cfg(tree))
    assert again.val_x.paths == s.val_x.paths and torch.equal(again.train_y, s.train_y)
    other = load_dataset(data_cfg(tree, split_seed=1))
    assert other.val_x.paths != s.val_x.paths
    assert load_dataset(data_cfg(tree, train_size=5, test_size=2)).train_x.shape[0] == 5


def test_max_classes(tree):
    s = load_dataset(data_cfg(tree, max_classes=2))
    assert s.num_classes == 2
    assert len(s.train_x) + len(s.val_x) == 2 * len(SIZES) and len(s.test_x) == 4
    assert set(s.train_y.tolist()) | set(s.val_y.tolist()) == {0, 1}
    assert {Path(p).parent.name for p in s.test_x.paths} == set(CLASSES[:2])
    with pytest.raises(DataError, match="max_classes=4 exceeds the 3 classes"):
        load_dataset(data_cfg(tree, max_classes=4))


def test_source_indexing_is_lazy_and_composes(tree):
    x = load_dataset(data_cfg(tree)).test_x
    idx = torch.tensor([5, 0, 3])
    sub = x[idx]
    assert isinstance(sub, ImageSource) and sub.shape == (3, 3, 32, 32)
    assert sub.paths == [x.paths[i] for i in (5, 0, 3)]
    assert sub[1:].paths == [x.paths[0], x.paths[3]]
    assert x[np.array([1, 2])].paths == x.paths[1:3] == x[[1, 2]].paths
    with pytest.raises(TypeError, match="slice or an index tensor"):
        x[0]


# -- decoding -----------------------------------------------------------------------------------------
def test_gather_decodes_normalised_images(tmp_path):
    """A constant-colour PNG decodes to its normalised colour everywhere; a left-red / right-blue image of
    80x40 is resized to 72x36 (shorter side int(32 / 0.875) = 36) and centre cropped at columns 20..51,
    so the colour boundary (column 40 -> 36 after resizing) lands at column 16 of the crop."""
    root = tmp_path / "t"
    for split in ("train", "val"):
        (root / split / "a").mkdir(parents=True)
    Image.new("RGB", (30, 50), (200, 30, 90)).save(root / "train" / "a" / "flat.png")
    halves = np.zeros((40, 80, 3), np.uint8)
    halves[:, :40] = (255, 0, 0)
    halves[:, 40:] = (0, 0, 255)
    Image.fromarray(halves).save(root / "train" / "a" / "halves.png")
    Image.new("RGB", (8, 8), (0, 0, 0)).save(root / "val" / "a" / "v.png")
    s = load_dataset(data_cfg(root, val_size=0))
    assert [Path(p).name for p in s.train_x.paths] == ["flat.png", "halves.png"]
    x = gather(s.train_x)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x[0], normalised((200, 30, 90)).view(3, 1, 1).expand(3, 32, 32), atol=1e-5, rtol=0)
    red, blue = normalised((255, 0, 0)).view(3, 1), normalised((0, 0, 255)).view(3, 1)
    torch.testing.assert_close(x[1, :, :, :15].reshape(3, -1), red.expand(3, 32 * 15), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[1, :, :, 18:].reshape(3, -1), blue.expand(3, 32 * 14), atol=1e-5, rtol=0)
    # gather with an index equals gathering the sub-source; channels_last sources load in that format
    torch.testing.assert_close(gather(s.train_x, torch.tensor([1])), x[1:])
    cl = gather(s.train_x.contiguous(memory_format=torch.channels_last))
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, x)


def test_eval_transform_is_deterministic_and_thread_independent(tree):
    x = load_dataset(data_cfg(tree)).train_x
    a = gather(x)
    assert torch.equal(a, gather(x)) and torch.equal(a, x.normalize(x.read(threads=2)))
    assert torch.equal(x.read(threads=0), x.read(threads=3))
    # tensors take the plain path: the same object or x[idx]
    t = torch.randn(5, 3, 4, 4)
    assert gather(t) is t and torch.equal(gather(t, torch.tensor([4, 1])), t[[4, 1]])


def test_train_augmentation_depends_only_on_the_seed(tree):
    x = load_dataset(data_cfg(tree)).train_x
    a = x.read(seed=(7, 0, 3))
    assert a.shape == (len(x), 32, 32, 3) and a.dtype == torch.uint8
    assert torch.equal(a, x.read(seed=(7, 0, 3), threads=2))  # whatever decodes it
    assert not torch.equal(a, x.read(seed=(7, 0, 4)))  # another batch index, other crops
    assert not torch.equal(a, x.read())  # not the evaluation crop


def test_random_resized_crop_box_stays_inside_and_keeps_its_ranges():
    rng = np.random.default_rng(0)
    for w, h in ((40, 30), (500, 375), (20, 200), (7, 5)):
        for _ in range(50):
            left, top, right, bottom = random_resized_crop_box(w, h, rng)
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
    areas, ratios = [], []
    for _ in range(300):  # a large image: rounding is negligible, every try fits the area range
        left, top, right, bottom = random_resized_crop_box(500, 375, rng)
        areas.append((right - left) * (bottom - top) / (500 * 375))
        ratios.append((right - left) / (bottom - top))
    assert 0.079 <= min(areas) < 0.2 and 0.8 < max(areas) <= 1.0
    assert 0.749 <= min(ratios) < 0.8 and 1.25 < max(ratios) <= 1.335
    # too narrow / too wide for any try: the centred crop clamped to ratio 3/4 (w=5 -> h=round(6.67)=7) or 4/3
    assert random_resized_crop_box(5, 500, rng) == (0, 246, 5, 253)
    assert random_resized_crop_box(500, 5, rng) == (246, 0, 253, 5)


# -- the loader ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
def test_stream_loader_covers_an_epoch_like_the_tensor_loader(tree, shuffle):
    x = load_dataset(data_cfg(tree)).train_x
    ids = torch.arange(len(x))  # as labels: the loader hands back which images it decoded
    stream = make_loader(x, ids, 4, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
    ref = TensorLoader(torch.zeros(len(x), 1), ids, 4, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
    assert isinstance(stream, StreamLoader) and len(stream) == len(ref) == 4
    for _ in range(2):  # two epochs: the same generator use, so the same orders
        got = list(stream)
        assert torch.equal(torch.cat([y for _, y in got]), torch.cat([y for _, y in ref]))
        assert sorted(torch.cat([y for _, y in got]).tolist()) == list(range(len(x)))
    for xb, yb in got:
        assert torch.equal(xb, gather(x, yb))  # each batch holds the images it names
    # shards of the global batch 6: the ranks' parts (2 images each) in rank order are the one process's
    # batches, augmentation included
    def batches(shard: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(make_loader(x, ids, 6, shuffle=True, augment=True, shard=shard, drop_last=True,
                                generator=torch.Generator().manual_seed(3)))

    one, parts = batches((0, 1)), [batches((r, 3)) for r in range(3)]
    assert len(one) == 2 and all(len(p) == 2 and all(len(yb) == 2 for _, yb in p) for p in parts)
    for b, (xb, yb) in enumerate(one):
        assert torch.equal(torch.cat([p[b][1] for p in parts]), yb)
        assert torch.equal(torch.cat([p[b][0] for p in parts]), xb)


def test_stream_loader_augmentation_is_independent_of_workers(tree):
    x = load_dataset(data_cfg(tree)).train_x
    ids = torch.arange(len(x))

    def epochs(workers: int, seed: int = 5) -> list[torch.Tensor]:
        src = load_dataset(data_cfg(tree, num_workers=workers)).train_x
        loader = make_loader(src, ids, 4, shuffle=True, augment=True, drop_last=True,
                             generator=torch.Generator().manual_seed(seed))
        return [xb for _ in range(2) for xb, _ in loader]

    a = epochs(0)
    assert len(a) == 2 * 3 and all(xb.shape == (4, 3, 32, 32) for xb in a)  # 14 images: 3 full batches
    b = epochs(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(torch.stack(a[:3]), torch.stack(a[3:]))  # the second epoch differs
    assert not all(torch.equal(p, q) for p, q in zip(a, epochs(0, seed=6)))


# -- errors -------------------------------------------------------------------------------------------
def one_line(e: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


def test_errors_are_one_line(tmp_path, tree):
    with pytest.raises(DataError, match="needs data.root") as e:
        load_dataset(DataConfig(name="imagefolder", image_size=32))
    one_line(e)
    with pytest.raises(DataError, match="is not a folder") as e:
        load_dataset(data_cfg(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in one_line(e)
    (tmp_path / "noval" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="val not found") as e:
        load_dataset(data_cfg(tmp_path / "noval"))
    assert "one folder per class" in one_line(e)
    (tmp_path / "noval" / "val").mkdir()
    with pytest.raises(DataError, match="holds no images") as e:
        load_dataset(data_cfg(tmp_path / "noval"))
    assert "train/<class>/<image>" in one_line(e)
    with pytest.raises(DataError, match="image_size=0 must be >= 1"):
        load_dataset(data_cfg(tree, image_size=0))


def test_a_corrupt_image_names_the_file(tmp_path):
    root = write_tree(tmp_path / "t")
    bad = root / "train" / CLASSES[1] / "img2.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    s = load_dataset(data_cfg(root, val_size=0, num_workers=1))  # lazy: loading still works
    with pytest.raises(DataError, match="cannot decode image") as e:
        gather(s.train_x)
    assert str(bad) in one_line(e) and "replace or delete" in str(e.value)
    with pytest.raises(DataError) as e:  # from a worker process, the same single line
        list(make_loader(s.train_x, s.train_y, 6))
    assert one_line(e).startswith("cannot decode image") and str(bad) in str(e.value)


def test_missing_pillow_is_one_line(tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` raises ImportError
    with pytest.raises(DataError, match=r"pip install 'distilnas\[images\]'") as e:
        load_dataset(data_cfg(tree))
    one_line(e)


# -- end to end ---------------------------------------------------------------------------------------
def search_dict(root: Path, **data: Any) -> dict[str, Any]:
    return {"seed": 0, "space": SPACE, "algorithm": {"name": "spos"},
            "data": {"name": "imagefolder", "root": str(root), "val_size": 6, "image_size": 32, "num_workers": 1,
                     "augment": True, **data},
            "train": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 2, "lr": 0.05, "device": "cpu", "log_every": 0},
            "score": {"bn_recal_batches": 1, "bn_recal_batch_size": 4, "batch_size": 4},
            "select": {"num_archs": 2, "top": 2}}


def test_search_score_and_resume_on_image_folders(tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    result = run_search(resolve_config(search_dict(tree)), out, progress=False)
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert result["steps"] == 4 and result["num_scored"] == len(scores) == 2
    assert all(r["accuracy"] * 6 / 100 == pytest.approx(round(r["accuracy"] * 6 / 100)) for r in scores)  # of 6
    # `distilnas score` decodes the same images: the same numbers
    (tmp_path / "archs.txt").write_text("\n".join(r["arch"] for r in scores) + "\n")
    assert main(["score", str(out / "checkpoint.pt"), "--archs", str(tmp_path / "archs.txt"),
                 "--out", str(tmp_path / "s.jsonl")]) == 0
    again = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(r["arch"], r["accuracy"], r["loss"]) for r in again] == [(r["arch"], r["accuracy"], r["loss"])
                                                                      for r in scores]
    # interrupted after epoch 1 and resumed: the same weights (order and augmentation come back exactly)
    from distilnas.algorithms import SPOS

    def stop(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return {}

    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        m.setattr(SPOS, "on_epoch_end", stop)
        with pytest.raises(KeyboardInterrupt):
            run_search(resolve_config(search_dict(tree)), cut, progress=False)
    run_search(resolve_config(search_dict(tree)), cut, resume=True, progress=False)
    a, b = load_checkpoint(out / "checkpoint.pt")["model"], load_checkpoint(cut / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)



@pytest.mark.parametrize("algorithm", [
    # pick=top1: the meta network's second-order step needs double backward through the SE gate's
    # hardsigmoid, which torch does not implement (a separate issue of the MobileNet space)
    {"name": "cream", "warmup_epochs": 0, "pick": "top1", "board_size": 2, "slice": 2, "board_val_size": 3,
     "meta_val_batch": 1},
    {"name": "rdnas", "teacher": "nwot", "sampler": "hamming", "mu": 1.0, "proxy_batch_size": 4},
])
def test_distilling_algorithms_on_image_folders(tree, tmp_path, algorithm):
    d = search_dict(tree)
    d["algorithm"] = algorithm
    d["train"]["epochs"] = 1
    cfg = resolve_config(d)
    result = run_search(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 2 and result["best"] is not None
    if algorithm["name"] == "cream":  # a fixed subset of max(board_val_size, 4 * meta_val_batch) images
        data = load_dataset(cfg.data)
        run = build_run(cfg)
        run.algorithm.setup(data, torch.device("cpu"))
        torch.testing.assert_close(run.algorithm._val_x, gather(data.val_x[:4]))


def test_cli_train_one_arch_and_error_line(tree, tmp_path, capsys):
    space = [f"space.{k}={json.dumps(v).replace(' ', '')}" for k, v in SPACE.items() if k != "name"]
    data = ["data.name=imagefolder", f"data.root={tree}", "data.val_size=6", "data.image_size=32",
            "data.num_workers=0"]
    code = main(["train", ARCH, "--space", "mobilenet", *space, *data, "recipe.epochs=1", "recipe.batch_size=4",
                 "device=cpu"])
    assert code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["arch"] == ARCH and res["space"] == "mobilenet"
    for split, n in (("val", 6), ("test", N_VAL)):
        assert 0 <= res[f"{split}_accuracy"] <= 100 and res[f"{split}_loss"] > 0
        assert res[f"{split}_accuracy"] * n / 100 == pytest.approx(round(res[f"{split}_accuracy"] * n / 100))
    # a space whose input size does not match data.image_size: the shape check names the fix
    bad = [s for s in space if not s.startswith("space.input_size=")] + ["space.input_size=16"]
    assert main(["train", ARCH, "--space", "mobilenet", *bad, *data, "device=cpu"]) == 2
    assert "space.input_size=32" in capsys.readouterr().err
    assert main(["train", ARCH, "--space", "mobilenet", *space, "data.name=imagefolder",
                 f"data.root={tmp_path / 'missing'}", "device=cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distilnas: error: data.root=") and "\n" not in err

