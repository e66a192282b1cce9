"""Write small fake datasets in the real on-disk formats, to try the GPU presets without the real data.

    python scripts/make_fake_data.py cifar10 DIR [--train 10000 --test 2000]
    python scripts/make_fake_data.py imagefolder DIR [--classes 10 --train 40 --val 5 --size 256]

``cifar10``: the standard python batches (data_batch_1..5, test_batch: pickled dicts with b"data" as
(n, 3072) uint8 and b"labels"), random images whose mean colour depends on the class, so that a few
steps of training visibly learn. ``imagefolder``: DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG
(needs Pillow). Neither is a benchmark: the numbers they give only show that a pipeline runs.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np


def fake_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(40, 216, size=(10, 3))

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, size=n)
        x = rng.normal(0, 40, size=(n, 3, 32, 32)) + colours[labels][:, :, None, None]
        return {b"data": np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072), b"labels": labels.tolist()}

    per = n_train // 5
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per)))
    (root / "test_batch").write_bytes(pickle.dumps(batch(n_test)))


def fake_imagefolder(root: Path, classes: int, n_train: int, n_val: int, size: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            colour = rng.integers(40, 216, size=3)
            for i in range(n):
                img = np.clip(rng.normal(0, 40, size=(size, size, 3)) + colour, 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img{i:05d}.JPEG", quality=85)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["cifar10", "imagefolder"])
    ap.add_argument("root", type=Path)
    ap.add_argument("--train", type=int, default=None, help="training images (cifar10: total; imagefolder: per class)")
    ap.add_argument("--test", type=int, default=2000, help="cifar10 test images")
    ap.add_argument("--val", type=int, default=5, help="imagefolder validation images per class")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    if args.kind == "cifar10":
        fake_cifar10(args.root, args.train or 10000, args.test)
    else:
        fake_imagefolder(args.root, args.classes, args.train or 40, args.val, args.size)
    print(f"wrote fake {args.kind} to {args.root}")


if __name__ == "__main__":
    main()
