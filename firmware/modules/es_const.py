# Earshot device constants for the on-device modules: the binding's (`_earshot`, which takes
# them from firmware/core/earshot.h), so that no module spells them.
#
# Without the binding (the unix port running the loop, the telemetry or an audio source
# with test doubles: tests/test_telemetry.py, tests/test_toolbox_boards.py) the header's
# values; tests/test_natmod.py checks they equal the binding's.

try:
    from _earshot import FLAG_DETECT, FLAG_OUTPUT, FLAG_VAD, HOP_SAMPLES, MEL_BINS, SAMPLE_RATE
except ImportError:
    SAMPLE_RATE = 16000  # ES_SAMPLE_RATE_HZ
    HOP_SAMPLES = 160  # ES_HOP_SAMPLES
    MEL_BINS = 40  # ES_MEL_BINS
    FLAG_VAD = 1  # ES_FLAG_VAD
    FLAG_OUTPUT = 4  # ES_FLAG_OUTPUT
    FLAG_DETECT = 8  # ES_FLAG_DETECT
