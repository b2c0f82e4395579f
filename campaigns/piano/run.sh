#!/usr/bin/env bash
# The piano model's training campaign, one stage at a time, resumable on any machine.
#
#   campaigns/piano/run.sh STAGE [SECONDS]      # STAGE: ft, then mix, then real, then join,
#                                               # then extra, hard or room (all from join),
#                                               # then pianos, swa, pieces or unheard
#                                               # (from room), then wide (from unheard)
#
# Datasets and runs live in $SCORELINK_WORK (default ~/scorelink-work), outside the work tree.
# A stage's run folder is seeded from the state committed in campaigns/piano/state/STAGE/ when
# the machine has none of its own (a fresh clone on a new machine goes on where the last one
# stopped); after training for at most SECONDS (default: until the stage's epochs are done) the
# run's small state (last.pt, best.pt, log.csv, config.json) is copied back there to commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=${1:?usage: run.sh STAGE [SECONDS]}
SECONDS_LEFT=${2:-0}
WORK=${SCORELINK_WORK:-$HOME/scorelink-work}
MSMD=${MSMD:-$WORK/data/msmd}  # a folder of MSMD built with --renditions 4 (as below)
CHORALES=${CHORALES:-$WORK/data/chorales}
BEETHOVEN=${BEETHOVEN:-$WORK/data/beethoven}
MUTOPIA=$WORK/data/mutopia  # ../shared/data/mutopia-extra, every piece a training piece
SALAMANDER=$WORK/data/salamander  # the training pieces once more, played by the Salamander grand
RUN=$WORK/runs/piano-$STAGE
STATE=campaigns/piano/state/$STAGE
STATE_FT=campaigns/piano/state/ft
STATE_MIX=campaigns/piano/state/mix
STATE_REAL=campaigns/piano/state/real
STATE_JOIN=campaigns/piano/state/join
STATE_ROOM=campaigns/piano/state/room
STATE_UNHEARD=campaigns/piano/state/unheard
BIN=.venv/bin
source campaigns/piano/common.sh

if [ ! -f "$MSMD/manifest.jsonl" ]; then  # the paper's data, rebuilt from its sources
  $BIN/scorelink data build --corpus msmd --msmd-dir ../shared/data/msmd --out "$MSMD" \
      --renditions 4
fi
if [ "$STAGE" != ft ] && [ ! -f "$CHORALES/manifest.jsonl" ]; then  # the built-in corpus
  $BIN/scorelink data build --corpus chorales --out "$CHORALES"
fi
if [ "$STAGE" = extra ] && [ ! -f "$MUTOPIA/manifest.jsonl" ]; then  # more keyboard music
  $BIN/scorelink data build --scores ../shared/data/mutopia-extra/mutopia --out "$MUTOPIA" \
      --split train --renditions 4
fi
if { [ "$STAGE" = real ] || [ "$STAGE" = join ] || [ "$STAGE" = extra ] \
       || [ "$STAGE" = hard ] || [ "$STAGE" = room ] || [ "$STAGE" = swa ] \
       || [ "$STAGE" = pieces ] || [ "$STAGE" = unheard ]; } \
    && [ ! -f "$BEETHOVEN/manifest.jsonl" ]; then  # real scans, real timing
  $BIN/scorelink data build --corpus beethoven --beethoven-dir ../shared/data/beethoven \
      --out "$BEETHOVEN"
fi
if [ "$STAGE" = pianos ]; then  # a sixth training piano, on the training pieces of all three
  SAL=(--only-split train --train-soundfonts salamander-grand)
  [ -f "$SALAMANDER/msmd/manifest.jsonl" ] || $BIN/scorelink data build --corpus msmd \
      --msmd-dir ../shared/data/msmd --out "$SALAMANDER/msmd" --renditions 2 "${SAL[@]}"
  [ -f "$SALAMANDER/chorales/manifest.jsonl" ] || $BIN/scorelink data build --corpus chorales \
      --out "$SALAMANDER/chorales" --renditions 2 "${SAL[@]}"
  [ -f "$SALAMANDER/beethoven/manifest.jsonl" ] || $BIN/scorelink data build \
      --corpus beethoven --beethoven-dir ../shared/data/beethoven \
      --out "$SALAMANDER/beethoven" "${SAL[@]}"
fi
if [ "$STAGE" = unheard ] || [ "$STAGE" = wide ]; then  # chosen by a piano training
                                                       # never hears, or not at all
  for d in "$MSMD" "$CHORALES" "$BEETHOVEN"; do
    if validates_on_a_training_piano "$d"; then
      echo "$d validates on a training piano's samples (csound-grand before 2026-12-06);" \
           "build it anew with today's defaults, or point MSMD/CHORALES/BEETHOVEN at such" \
           "a folder" >&2
      exit 2
    fi
  done
fi
mkdir -p "$RUN"
if [ ! -f "$RUN/last.pt" ] && [ -f "$STATE/last.pt" ]; then
  cp "$STATE"/* "$RUN"/
  echo "seeded $RUN from $STATE (epoch $(tail -1 "$RUN/log.csv" | cut -d, -f1))"
fi

# What the stages share: the budget of every stage, the three corpora beside MSMD (stage real
# on), and the recipes that each kept stage added to (each stage below names what it changes).
BUDGET=(passages_per_epoch=2048 patience=6 epochs=400 workers=1)
ALL3=(--data "$CHORALES" --data "$BEETHOVEN")
BASE=(timbre_augment=true tempo_augment=1.6 crop_augment=0.5)
JOIN=("${BASE[@]}" join_augment=0.5 scan_augment=0.3)
ROOM=("${JOIN[@]}" room_augment=0.5)
UNHEARD=("${ROOM[@]}" piano_augment=0.5 fine_eq_augment=0.5)

case $STAGE in
  ft)  # the chorale RNN-FT, warm-started whole and trained on MSMD with every augmentation
    ARGS=(--init-from chorales lr=5e-4 "${BASE[@]}" "${BUDGET[@]}") ;;
  mix)  # stage ft's best trained on with the built-in corpus in the pool beside MSMD, so that
        # the chorales stay known (MSMD's validation still chooses the checkpoint)
    ARGS=(--data "$CHORALES" --init-from "$STATE_FT/best.pt" lr=1e-4 "${BASE[@]}"
          "${BUDGET[@]}") ;;
  real)  # stage mix's best trained on with the real-scan corpus's training split (Durand scans,
         # nASAP performances) and scan-like engraved strips; chosen by the mean validation MRR
         # of the three folders, so that no kind of music is traded away unseen
    ARGS=("${ALL3[@]}" --init-from "$STATE_MIX/best.pt" lr=1e-4 "${BASE[@]}" scan_augment=0.3
          "${BUDGET[@]}" valid_on=all) ;;
  join)  # stage real's best trained on with half the passages cut across the boundary into
          # the next system (join_augment): clips cut at random places hear such music, and the
          # index's parts show it; a lower learning rate, to stay near stage real's optimum
    ARGS=("${ALL3[@]}" --init-from "$STATE_REAL/best.pt" lr=5e-5 "${JOIN[@]}" "${BUDGET[@]}"
          valid_on=all) ;;
  extra)  # stage join's best trained on with mutopia-extra's keyboard pieces in the pool too
          # (more pieces to tell apart; training only, so validation stays on the three
          # folders that have a validation split)
    ARGS=("${ALL3[@]}" --data "$MUTOPIA" --init-from "$STATE_JOIN/best.pt" lr=5e-5
          "${JOIN[@]}" "${BUDGET[@]}" valid_on=all) ;;
  hard)  # stage join's best trained on with the loss over the 8 hardest in-batch negatives of
         # each anchor, both ways (sheet and audio anchors): averaged over all 63, the paper's
         # loss has all but stopped teaching (docs/model.md), and what clips and no-match lack
         # is the power to tell pieces apart
    ARGS=("${ALL3[@]}" --init-from "$STATE_JOIN/best.pt" lr=5e-5 hard_negatives=8
          symmetric=true "${JOIN[@]}" "${BUDGET[@]}" valid_on=all) ;;
  room)  # stage join's best trained on with half the passages' audio given a reverberation
         # tail and compressed or expanded dynamics (room_augment): the shipped model lost 12
         # and 23 points of clip R@1 to those, and 13.5 to the test piano (docs/search.md)
    ARGS=("${ALL3[@]}" --init-from "$STATE_JOIN/best.pt" lr=5e-5 "${ROOM[@]}" "${BUDGET[@]}"
          valid_on=all) ;;
  pianos)  # stage room's best trained on with the training pieces also played by the
           # Salamander grand (a sampled concert grand; the others are General MIDI banks): the
           # unknown test piano cost 13.5 points of clip R@1 that colour, room and dynamics
           # did not explain (docs/search.md)
    ARGS=("${ALL3[@]}" --data "$SALAMANDER/msmd" --data "$SALAMANDER/chorales"
          --data "$SALAMANDER/beethoven" --init-from "$STATE_ROOM/best.pt" lr=5e-5
          "${ROOM[@]}" "${BUDGET[@]}" valid_on=all) ;;
  swa)  # stage room's best trained on with room's recipe at a constant learning rate, every
        # epoch's weights kept: clip R@1 swings by several points from one epoch to the next
        # while passage MRR moves by hundredths, so the epochs are averaged afterwards
        # (python -m scorelink.train.average) and the average chosen on validation clips
    ARGS=("${ALL3[@]}" --init-from "$STATE_ROOM/best.pt" lr=5e-5 "${ROOM[@]}"
          passages_per_epoch=2048 patience=1000 epochs=20 keep_epochs=true workers=1
          valid_on=all) ;;
  pieces)  # stage room's best trained on with batches of 16 pieces x 4 neighbouring systems
           # (piece_batches=4): the shipped model finds training pieces' clips no better than
           # unseen ones' (it underfits), and the paper's loss has stopped teaching on random
           # batches; the systems beside a passage are what a clip cut anywhere confuses
    ARGS=("${ALL3[@]}" --init-from "$STATE_ROOM/best.pt" lr=5e-5 "${ROOM[@]}"
          piece_batches=4 "${BUDGET[@]}" valid_on=all) ;;
  unheard)  # stage room's best trained on with half the passages played by a random other
            # piano, note by note (piano_augment), and half through a random equaliser with a
            # gain for every band (fine_eq_augment). The shipped model finds 10 s clips of the
            # validation pieces 74.5 % of the time on a training piano's samples and 13.5-33.5
            # % on two pianos it never heard; on the chorales alone the two options beat the
            # same recipe without them there by +4.2 and +11.4 points, +12.0 together
            # (docs/search.md, Other pianos). Chosen on folders built with today's defaults,
            # whose validation is played by tonejs-piano (folders validated by csound-grand,
            # a training piano's samples, would choose blind)
    ARGS=("${ALL3[@]}" --init-from "$STATE_ROOM/best.pt" lr=5e-5 "${UNHEARD[@]}"
          "${BUDGET[@]}" valid_on=all) ;;
  wide)  # stage unheard's best widened to 64-d snippet vectors (snippet_dim=64; the paper's 32
         # are all the GRU hears of a second of audio), trained on with unheard's recipe at
         # lr 2e-4 so that the new inputs, which start at weight 0, learn: on the chorale pilot
         # for unknown pianos the widened model beat the same recipe at 32 by +3.1 [-1.6, +7.9]
         # points (docs/search.md, Other pianos)
    ARGS=("${ALL3[@]}" --init-from "$STATE_UNHEARD/best.pt" lr=2e-4 snippet_dim=64
          "${UNHEARD[@]}" "${BUDGET[@]}" valid_on=all) ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac

status=0
if [ "$SECONDS_LEFT" -gt 0 ]; then
  timeout --signal=INT "$SECONDS_LEFT" $BIN/scorelink train --data "$MSMD" --out "$RUN" \
      "${ARGS[@]}" || status=$?
else
  $BIN/scorelink train --data "$MSMD" --out "$RUN" "${ARGS[@]}" || status=$?
fi
mkdir -p "$STATE"
for f in last.pt best.pt log.csv config.json; do
  [ -f "$RUN/$f" ] && cp "$RUN/$f" "$STATE/$f"
done
echo "state of $RUN saved in $STATE (commit it)"
[ "$status" = 124 ] && exit 0  # stopped by the time limit: expected
exit "$status"
