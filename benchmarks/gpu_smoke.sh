#!/usr/bin/env bash
# GPU smoke run of the larger presets, unchanged, on fake data in the real formats (scripts/make_fake_data.py):
# the official-size NB201 supernet on CIFAR-10 batches with SPOS, FairNAS, RD-NAS and Cream; Cream in the
# ImageNet MobileNet space at 224 px from an image-folder tree; retraining + ONNX export of its pick; a DNA
# block with a timm EfficientNet-B0 teacher (random weights) when timm is installed. Each run is short
# (the fake data are small); the point is that the configs run on a GPU and how fast a step is.
#   benchmarks/gpu_smoke.sh OUT_DIR
set -euo pipefail
out=${1:?usage: benchmarks/gpu_smoke.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
dn() { "$py" -m distilnas.cli "$@"; }
tmp=$(mktemp -d)
"$py" scripts/make_fake_data.py cifar10 "$tmp/cifar" --train 10000 --test 2000
"$py" scripts/make_fake_data.py imagefolder "$tmp/imnet" --classes 10 --train 40 --val 5 --size 256

nb="configs/gpu/spos_nb201_cifar10.yaml data.root=$tmp/cifar data.val_size=2000 train.epochs=1 select.num_archs=20"
dn search $nb --out "$out/spos_nb201"
dn search $nb algorithm.name=fairnas --out "$out/fairnas_nb201"
dn search $nb algorithm.name=rdnas --out "$out/rdnas_nb201"
dn search $nb algorithm.name=cream algorithm.warmup_epochs=0 algorithm.update_iter=20 --out "$out/cream_nb201"

im="configs/gpu/cream_mobilenet_imagenet.yaml data.root=$tmp/imnet data.val_size=80 space.num_classes=10
    train.epochs=2 train.batch_size=32 data.num_workers=4 algorithm.warmup_epochs=1 algorithm.update_iter=2
    algorithm.board_val_size=32 algorithm.meta_val_batch=16 score.val_size=64 score.bn_recal_batches=2"
dn search $im --out "$out/cream_mbv_imagenet"
dn retrain "$out/cream_mbv_imagenet/result.json" recipe.epochs=1 recipe.batch_size=32 export_onnx=auto \
    --out "$out/cream_mbv_imagenet_retrain"

if "$py" -c "import timm" 2>/dev/null; then
  dn search configs/dna/dna_mobilenet_fmnist16.yaml space.preset=imagenet space.num_classes=10 \
      space.depths=[3,3,3,3,3] data.name=imagefolder data.root=$tmp/imnet data.image_size=224 data.val_size=80 \
      algorithm.block=2 "algorithm.teacher=" algorithm.teacher_timm=efficientnet_b0 \
      "algorithm.teacher_stages=[blocks.1,blocks.2,blocks.3,blocks.4,blocks.5]" \
      train.epochs=1 train.steps_per_epoch=10 train.batch_size=16 train.threads=0 \
      score.val_size=32 score.batch_size=32 score.bn_recal_batch_size=16 --out "$out/dna_block2_timm"
fi

"$py" - "$out" <<'EOF'
import json, sys
from pathlib import Path
for d in sorted(Path(sys.argv[1]).iterdir()):
    r = d / "result.json"
    if r.exists():
        res = json.loads(r.read_text())
        steps, secs = res.get("steps"), res.get("train_seconds") or res.get("seconds")
        per = f"{1000 * secs / steps:.1f} ms/step" if steps and secs else ""
        print(f"{d.name:28s} arch {str(res.get('arch'))[:60]:60s} {per}")
EOF
