# Shell helpers that campaigns/piano/run.sh and measure.sh share (sourced, not run).

# Exit status 0 when the dataset folder $1's validation is played by a training piano's samples
# (scorelink.data.store.Dataset.validates_on_a_training_piano), 1 when by a piano training never
# hears. Needs $BIN (the virtual environment's bin folder).
validates_on_a_training_piano() {
  "$BIN/python" -c "import sys; from scorelink.data.store import Dataset; \
      sys.exit(not Dataset(sys.argv[1]).validates_on_a_training_piano)" "$1"
}
