# Earshot board definition (MicroPython): Seeed Studio XIAO ESP32S3 Sense.
#
# The one place this board's microphone is described (see ESP32_S3_DEVKITC_INMP441 for the
# rules). The Sense expansion board carries a PDM MEMS microphone (MSM261D3526H1CPM) wired
# to GPIO42 (clock) and GPIO41 (data), as in Seeed's XIAO ESP32S3 Sense wiki; nothing to wire.
#
# PDM: the ESP32-S3's I2S0 converts PDM to PCM in hardware, but stock MicroPython's
# machine.I2S has no PDM mode; micropython/micropython pull request #14176 (still open when
# this was written) adds one (I2S.PDM_RX). es_audio uses it when the firmware has it and otherwise raises OSError
# saying so (see README, "From zero to a listening board").

NAME = "XIAO_ESP32S3_SENSE"

MIC = {
    "kind": "pdm",  # PDM RX on I2S0 (PDM needs I2S0 on the ESP32-S3)
    "id": 0,
    "sck": 42,  # PDM clock
    "sd": 41,  # PDM data
    "bits": 16,  # the PDM-to-PCM filter delivers 16-bit samples
    "shift": 0,
    "ibuf": 8192,
}
