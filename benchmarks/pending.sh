#!/usr/bin/env bash
# The experiments still open (issue 12 and a follow-up of issue 11), in two lanes of one core each, so that a
# machine that lost its run directories (a new session, a reboot) picks them up with two commands:
#
#     benchmarks/pending.sh A > runs/pending-A.log 2>&1 &
#     benchmarks/pending.sh B > runs/pending-B.log 2>&1 &
#
# Every step skips what is already committed (suite predictions in benchmarks/results/, ground-truth runs in
# benchmarks/groundtruth/*/runs.jsonl) and resumes what its run directory still holds, so rerunning a lane
# is always safe; a step that fails is reported and the lane goes on. Commit the new predictions and
# runs.jsonl lines as they arrive (a run cut off by the end of a session is redone from its start).
# The lanes never train the same run. OUT (default runs/pending) holds the run directories; PYTHON (default
# .venv/bin/python) is the interpreter, the code is this checkout's src/.
set -u
cd "$(dirname "$0")/.."
lane=${1:?usage: benchmarks/pending.sh A|B [OUT]}
out=${2:-runs/pending}
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

step() {  # run one step; report a failure and go on
  echo "== $(date -u +%FT%TZ) $*"
  "$@" || echo "== failed (status $?): $*"
}
suite() { step "$py" benchmarks/run_suite.py "benchmarks/suites/$1.yaml" --out "$out/suite" "${@:2}"; }

case $lane in
A)  # issue 12: the MobileNet ground truth, then DNA's, Cream's and SPOS's ranking on it (the critical path),
    # then seeds 1-2 of Cream's tuning knobs
  step "$py" -m distilnas.cli bench build configs/bench/groundtruth_mobilenet_w0125_fmnist16.yaml \
    --archs benchmarks/groundtruth/mobilenet_w0125_fmnist16/archs.txt \
    --out benchmarks/groundtruth/mobilenet_w0125_fmnist16 workers=1
  if [ -e benchmarks/groundtruth/mobilenet_w0125_fmnist16/table.json ]; then  # the suite scores all 48
    # its own run folders: its labels spos-e48 and cream-e48 are the NB201 budget suite's too (spos, cream
    # and dna are committed and never run again)
    step "$py" benchmarks/run_suite.py benchmarks/suites/mobilenet_w0125_fmnist16.yaml --out "$out/suite-mobilenet"
    # the 48-epoch probe's snapshots (entries spos-e48 and cream-e48 of that suite)
    step "$py" benchmarks/ranking_over_training.py benchmarks/suites/mobilenet_w0125_fmnist16.yaml --half all \
      --run "spos=$out/suite-mobilenet/spos-e48/seed0" --run "cream=$out/suite-mobilenet/cream-e48/seed0" \
      --out benchmarks/results/mobilenet_w0125_fmnist16_over_training.json \
      --figure docs/img/benchmark/ranking_over_training_mobilenet_w0125_fmnist16.png
  else
    echo "== the MobileNet ground truth is not complete (another lane A running it?): its suite waits"
  fi
  # Cream's tuning knobs, seeds 1-2 (seed 0 of each is lane B's screen), to balance the lanes
  suite nb201_fmnist16_cream_tuning --seeds 1,2 \
    --only cream-meta-lr-1e-4,cream-official,cream-board-5,cream-warmup-4,cream-update-iter-5,cream-top1-rho-1
  ;;
B)  # issue 12: Cream vs SPOS at 24 epochs (8 seeds), search quality (3 retrain seeds), Cream's tuning knobs,
    # (a screen at seed 0), ranking over training; then the 4x ranking weight for RD-NAS's jacob_cov teacher
    # (a follow-up of issue 11)
  suite nb201_fmnist16_e24
  step "$py" benchmarks/search_quality.py benchmarks/suites/search_quality_mobilenet_fmnist16.yaml --out "$out/sq"
  # Cream's tuning knobs: seed 0 of the four new ones first, a screen (seeds 1-2 run last in lane A)
  suite nb201_fmnist16_cream_tuning --seeds 0 --only cream-board-5,cream-warmup-4,cream-update-iter-5,cream-top1-rho-1
  for m in spos cream; do
    for s in 0 1 2; do
      d="$out/rot/$m$s"
      resume=(); [ -e "$d/checkpoint.pt" ] && resume=(--resume)
      [ -e "$d/result.json" ] || step "$py" -m distilnas.cli search "configs/bench/${m}_nb201_fmnist16.yaml" \
        --out "$d" "${resume[@]}" "seed=$s" train.threads=1 train.snapshot_every=2
    done
  done
  step "$py" benchmarks/ranking_over_training.py benchmarks/suites/nb201_fmnist16.yaml \
    --run "spos=$out/rot/spos0,$out/rot/spos1,$out/rot/spos2" \
    --run "cream=$out/rot/cream0,$out/rot/cream1,$out/rot/cream2" --pair cream:spos --half tuning \
    --out benchmarks/results/nb201_fmnist16_over_training.json \
    --figure docs/img/benchmark/ranking_over_training_nb201_fmnist16.png
  suite nb201_fmnist16_rdnas_teachers --only rdnas-jacob_cov-scale-8
  ;;
*) echo "usage: benchmarks/pending.sh A|B [OUT]" >&2; exit 2 ;;
esac
echo "== $(date -u +%FT%TZ) lane $lane done"
