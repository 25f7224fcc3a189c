# Earshot board definition (MicroPython): Espressif ESP32-S3-DevKitC-1 + INMP441.
#
# The one place this board's microphone is described. es_audio.make_source() reads MIC when
# earshot.json does not override "i2s"; the host tools read this file with ast.literal_eval,
# so NAME and MIC must stay literals. Keys: see es_audio.I2SSource.
#
# Wiring (INMP441 breakout -> DevKitC-1): VDD -> 3V3, GND -> GND, L/R -> GND (left slot),
# SCK -> GPIO5, WS -> GPIO4, SD -> GPIO6. GPIO4-6 are free on every DevKitC-1 variant (not
# strapping, flash/PSRAM, USB or UART0 pins).

NAME = "ESP32_S3_DEVKITC_INMP441"

MIC = {
    "kind": "i2s",  # standard (Philips) I2S, the ESP32-S3 drives SCK and WS
    "id": 0,  # I2S peripheral
    "sck": 5,
    "ws": 4,
    "sd": 6,
    "bits": 32,  # the INMP441 sends 24-bit samples MSB first in a 32-bit slot
    "shift": 16,  # int16 sample = int32 slot >> shift (smaller: more gain)
    "ibuf": 8192,  # machine.I2S internal buffer, bytes
}
