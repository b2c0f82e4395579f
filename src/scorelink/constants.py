"""The signal and image contract shared by the dataset, the models and the search.

Base values are written once; everything derived is computed from them (never retyped).
Values follow the paper and the authors' code (see docs/dataset.md).
"""

# --- audio -----------------------------------------------------------------
SAMPLE_RATE = 22_050  # Hz, mono
FPS = 20  # spectrogram frames per second
FRAME_SIZE = 2_048  # samples per STFT frame (Hann window)
HOP_SIZE = SAMPLE_RATE / FPS  # samples between frames (1102.5; frames are placed by time)
FMIN = 30.0  # Hz, lowest band of the log filterbank
FMAX = 6_000.0  # Hz, highest band
BANDS_PER_OCTAVE = 16
N_BINS = 92  # log-frequency bins left after merging duplicate bands (checked in tests)

# --- sheet -----------------------------------------------------------------
PAGE_WIDTH = 835  # px, pages are rescaled to this width
PAGE_HEIGHT = round(PAGE_WIDTH * 297 / 210)  # px, A4 portrait (1181)
STAFF_HEIGHT = 28  # px, a five-line staff (LilyPond's 20-pt staff on A4)
STRIP_HEIGHT = 160  # px, window centred on a system

# --- network inputs (used by the models) -----------------------------------
SHEET_SCALE = 2  # strips are halved before the network
SHEET_SNIPPET_HEIGHT = STRIP_HEIGHT // SHEET_SCALE  # 80
SHEET_SNIPPET_WIDTH = 180 // SHEET_SCALE  # 90
SHEET_SNIPPET_HOP = 81  # px at half resolution (10 % overlap)
SHEET_LEFT_PAD = 20  # px of white at half resolution
AUDIO_SNIPPET_FRAMES = FPS  # 1 s
AUDIO_SNIPPET_HOP = 18  # frames

# --- performance -----------------------------------------------------------
VELOCITY = 64  # constant MIDI velocity, as MSMD
TRAIN_TEMPI = (0.90, 0.95, 1.00, 1.05, 1.10)
TEST_TEMPI = (0.5, 0.66, 1.0, 1.33, 2.0)  # tempo-robustness renditions (ratio rho)
