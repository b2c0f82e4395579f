#!/usr/bin/env bash
# The note reader's training, resumable on any machine (docs/reader.md).
#
#   [EPOCHS=N] campaigns/reader/run.sh MINUTES [LR]
#
# Trains on the engraved training systems of the built-in chorales and of MSMD (their
# noteheads' positions come from the engraving) and on the real scans' training systems (their
# written notes placed on the strip by the model itself at every epoch, train/scan_targets.py;
# the sonatas in HOLD are left out, to choose readers on), and is judged on the engraved
# validation systems after every epoch. SCANS=none trains on engravings alone. The run folder
# ($SCORELINK_WORK/runs/reader, default ~/scorelink-work) is seeded from
# campaigns/reader/state/ when the machine has none of its own; after MINUTES its small
# state (last.pt: the model and the optimizer; log.jsonl) is copied back there to commit. Ship
# a checkpoint with `python -m scorelink.train.reader --ship RUN/best.pt` (on a fresh machine,
# best.pt is what this machine's epochs bettered; the shipped reader is the best before them).
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${1:?usage: run.sh MINUTES [LR]}
LR=${2:-1e-3}  # a lower rate for a run's last epochs
EPOCHS=${EPOCHS:-0}  # stop after this many whole epochs (0: MINUTES alone stops it, mid-epoch)
WORK=${SCORELINK_WORK:-$HOME/scorelink-work}
MSMD=${MSMD:-$WORK/data/msmd}  # built as campaigns/piano/run.sh builds it
CHORALES=${CHORALES:-$WORK/data/chorales}
BEETHOVEN=${BEETHOVEN:-$WORK/data/beethoven}
SCANS=${SCANS:-$WORK/data/beethoven-scantrain}
HOLD=sonata04,sonata09,sonata22,sonata28  # real-scan training sonatas no reader learns from
RUN=$WORK/runs/reader
STATE=campaigns/reader/state
BIN=.venv/bin

if [ ! -f "$MSMD/manifest.jsonl" ]; then
  $BIN/scorelink data build --corpus msmd --msmd-dir ../shared/data/msmd --out "$MSMD" \
      --renditions 4
fi
if [ ! -f "$CHORALES/manifest.jsonl" ]; then
  $BIN/scorelink data build --corpus chorales --out "$CHORALES"
fi
SCAN_ARGS=()
if [ "$SCANS" != none ]; then
  if [ ! -f "$BEETHOVEN/manifest.jsonl" ]; then
    $BIN/scorelink data build --corpus beethoven --beethoven-dir ../shared/data/beethoven \
        --out "$BEETHOVEN"
  fi
  $BIN/python benchmarks/dataset_view.py --data "$BEETHOVEN" --out "$SCANS" --sonatas "$HOLD" \
      --drop --splits train --with-split valid
  SCAN_ARGS=(--scans "$SCANS" --kern ../shared/data/beethoven/kern)
fi
mkdir -p "$RUN"
if [ ! -f "$RUN/last.pt" ] && [ -f "$STATE/last.pt" ]; then
  cp "$STATE/last.pt" "$STATE/log.jsonl" "$RUN/"
fi
$BIN/python -m scorelink.train.reader --data "$CHORALES" --data "$MSMD" --out "$RUN" \
    --minutes "$MINUTES" --epochs "$EPOCHS" --lr "$LR" --resume "${SCAN_ARGS[@]}"
cp "$RUN/last.pt" "$RUN/log.jsonl" "$STATE/"
