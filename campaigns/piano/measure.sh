#!/usr/bin/env bash
# Measure a candidate piano model beside the shipped one, as a stage's result is decided.
#
#   campaigns/piano/measure.sh choose CKPT [NAME]   # validation: is it better? (about 25 min)
#   campaigns/piano/measure.sh report CKPT [NAME]   # test and calibration, for a model chosen
#                                                   # on validation (about an hour)
#
# choose: clips cut anywhere in the three validation splits (MSMD, the built-in corpus, the
# real scans), ranked by the candidate and by the shipped model on the same clips, pooled with
# paired intervals (docs/search.md); the decision is made on these. report: the same on the test
# splits and on the test piano against a training piano, the no-match calibration fitted on
# validation at every tempo ratio (paste the entry it prints into search/confidence.py), then
# the passage MRR of the paper's table (docs/paper-comparison.md). Never tune on report's
# figures.
#
# Datasets live in $SCORELINK_WORK/data (default ~/scorelink-work/data): msmd (valid+test),
# chorales, beethoven (or the folders named by $MSMD, $CHORALES, $BEETHOVEN, as for run.sh;
# figures are kept under each folder's name, so folders built anew are measured afresh),
# msmd-vt and chorales-vt (validation at every tempo ratio, for the calibration) and
# chorales-test-fluidr3 (the test pieces played by a training piano); each is built here when
# missing. Results go to $SCORELINK_WORK/measure/NAME.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:?usage: measure.sh choose|report CKPT [NAME]}
CKPT=${2:?usage: measure.sh choose|report CKPT [NAME]}
NAME=${3:-$(basename "$(dirname "$CKPT")")}
WORK=${SCORELINK_WORK:-$HOME/scorelink-work}
D=$WORK/data
OUT=$WORK/measure/$NAME
MSMD=${MSMD:-$D/msmd}
CHORALES=${CHORALES:-$D/chorales}
BEETHOVEN=${BEETHOVEN:-$D/beethoven}
# the shipped model's figures, kept per shipped file: a new shipped model is measured afresh
SHIPPED=$WORK/measure/shipped-$(sha256sum src/scorelink/weights/rnn-piano.pt | cut -c1-12)
BIN=.venv/bin
source campaigns/piano/common.sh
PY=$BIN/python
mkdir -p "$OUT" "$SHIPPED"

build() {  # folder, then `scorelink data build` arguments
  local folder=$1
  shift
  [ -f "$folder/manifest.jsonl" ] || $BIN/scorelink data build --out "$folder" "$@"
}
for split in valid test; do  # MSMD's validation and test pieces, one folder
  grep -qs "\"split\": \"$split\"" "$MSMD/manifest.jsonl" || $BIN/scorelink data build \
      --corpus msmd --msmd-dir ../shared/data/msmd --out "$MSMD" --only-split "$split"
done
build "$CHORALES" --corpus chorales
build "$BEETHOVEN" --corpus beethoven --beethoven-dir ../shared/data/beethoven

clips() {  # split, folder, model (empty: shipped), output stem, extra arguments
  local split=$1 folder=$2 model=$3 stem=$4
  shift 4
  [ -f "$stem.pkl" ] && return 0
  $PY benchmarks/search_quality.py --data "$folder" --split "$split" \
      ${model:+--checkpoint "$model"} --save "$stem.pkl" "$@" > "$stem.md" 2> "$stem.err"
}

case $MODE in
  choose)
    pairs=()
    for folder in "$MSMD" "$CHORALES" "$BEETHOVEN"; do
      validates_on_a_training_piano "$folder" \
          && echo "warning: $folder validates on a training piano's samples; its figures" \
                  "overstate what an unknown piano gets (docs/search.md, Other pianos)" >&2
      name=$(basename "$folder")
      clips valid "$folder" "" "$SHIPPED/valid-$name" --no-fused
      clips valid "$folder" "$CKPT" "$OUT/valid-$name" --no-fused
      pairs+=(--pool "$OUT/valid-$name.pkl=$SHIPPED/valid-$name.pkl")
    done
    $PY benchmarks/search_quality.py "${pairs[@]}" | tee "$OUT/valid-pooled.md" ;;
  report)
    build "$D/chorales-test-fluidr3" --corpus chorales --only-split test \
        --test-soundfont fluidr3-grand \
        --train-soundfonts fluidr3-epiano,fluidr3-egrand,timgm6mb-grand,timgm6mb-epiano
    build "$D/msmd-vt" --corpus msmd --msmd-dir ../shared/data/msmd --only-split valid \
        --valid-tempi 0.5,0.66,1,1.33,2
    build "$D/chorales-vt" --corpus chorales --only-split valid --valid-tempi 0.5,0.66,1,1.33,2
    pairs=()
    for folder in "$CHORALES" "$MSMD"; do
      name=$(basename "$folder")
      clips test "$folder" "" "$SHIPPED/test-$name"
      clips test "$folder" "$CKPT" "$OUT/test-$name"
      pairs+=(--pool "$OUT/test-$name.pkl=$SHIPPED/test-$name.pkl")
    done
    $PY benchmarks/search_quality.py "${pairs[@]}" | tee "$OUT/test-pooled.md"
    for folder in "$CHORALES" "$D/chorales-test-fluidr3"; do  # the test piano against a
      name=$(basename "$folder")                                  # training one
      clips test "$folder" "" "$SHIPPED/piano-$name" --no-fused --seconds 10
      clips test "$folder" "$CKPT" "$OUT/piano-$name" --no-fused --seconds 10 \
          --against "$SHIPPED/piano-$name.pkl"
    done
    $PY benchmarks/no_match.py --data "$D/chorales-vt" --data "$D/msmd-vt" --split valid \
        --clips 150 --noise 25 --tempi 0.5,0.66,1,1.33,2 --checkpoint "$CKPT" --fit \
        > "$OUT/no-match-fit.md" 2> "$OUT/no-match-fit.err"
    $PY benchmarks/paper_comparison.py --data "$MSMD" --model "shipped=piano" \
        --model "$NAME=$CKPT" --against shipped > "$OUT/paper.md" 2> "$OUT/paper.err"
    echo "paste the CALIBRATION entry of $OUT/no-match-fit.md, then run benchmarks/no_match.py" \
         "on the test split (docs/search.md) and the alignment and real-scan benchmarks" ;;
  *) echo "unknown mode $MODE (choose or report)" >&2; exit 2 ;;
esac
echo "results in $OUT"
