#!/usr/bin/env bash
# The paper's six models (BL, RNN, RNN-FT, RNN-FT-CCA, RNN-FZ, RNN-FZ-CCA) trained on MSMD at
# one budget, for the Table 2 row I of docs/paper-comparison.md. One stage at a time:
#
#   campaigns/paper-six/run.sh STAGE      # bl, bl-cca, rnn, rnn-ft, rnn-ft-cca, rnn-fz, rnn-fz-cca
#
# The budget: BL sees 2 epochs of 65,536 snippet pairs; every recurrent model sees 6 epochs of
# 2,048 passages after its start (RNN: random weights; -FT / -FZ: the BL's CNNs, trained on /
# frozen; -CCA: the BL with its CCA layer fitted on 25,000 training pairs). Every model hears
# the same audio augmentation (timbre_augment; tempo_augment=1.6 for passages), which the
# paper does not use but the unseen test piano needs. One thread per run, so that two stages
# can run side by side on 2 cores (rnn beside bl; rnn-ft beside the rest). Datasets and runs
# live in $SCORELINK_WORK (default ~/scorelink-work); a run resumes from its last.pt.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=${1:?usage: run.sh STAGE}
WORK=${SCORELINK_WORK:-$HOME/scorelink-work}
MSMD=$WORK/data/msmd
RUNS=$WORK/runs/six
BIN=.venv/bin
export OMP_NUM_THREADS=1

if [ ! -f "$MSMD/manifest.jsonl" ]; then  # the paper's data, rebuilt from its sources
  $BIN/scorelink data build --corpus msmd --msmd-dir ../shared/data/msmd --out "$MSMD" \
      --renditions 4
fi
mkdir -p "$RUNS"
PASSAGES=(timbre_augment=true tempo_augment=1.6 passages_per_epoch=2048 epochs=6 patience=4
          workers=1)
train() { $BIN/scorelink train --data "$MSMD" --out "$RUNS/$STAGE" "$@"; }
case $STAGE in
  bl)         train --model snippet --preset paper timbre_augment=true epochs=2 workers=1 ;;
  bl-cca)     $BIN/scorelink refine-cca --checkpoint "$RUNS/bl/best.pt" --data "$MSMD" \
                  --out "$RUNS/bl-cca.pt" ;;
  rnn)        train --model rnn --preset paper lr=1e-3 "${PASSAGES[@]}" ;;
  # from the BL at the paper's lr 3e-3, RNN-FT loses the BL's features in its first epoch
  # (docs/model.md), hence 3e-4 for the fine-tuned ones
  rnn-ft)     train --model rnn --preset paper --init-from "$RUNS/bl/best.pt" lr=3e-4 \
                  "${PASSAGES[@]}" ;;
  rnn-ft-cca) train --model rnn --preset paper --init-from "$RUNS/bl-cca.pt" lr=3e-4 \
                  "${PASSAGES[@]}" ;;
  rnn-fz)     train --model rnn --preset paper --init-from "$RUNS/bl/best.pt" --freeze-cnn \
                  lr=1e-3 "${PASSAGES[@]}" ;;
  rnn-fz-cca) train --model rnn --preset paper --init-from "$RUNS/bl-cca.pt" --freeze-cnn \
                  lr=1e-3 "${PASSAGES[@]}" ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
