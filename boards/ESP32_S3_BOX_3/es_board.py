# Earshot board definition (MicroPython): Espressif ESP32-S3-BOX-3.
#
# The one place this board's audio path is described (see ESP32_S3_DEVKITC_INMP441 for the
# rules). The two microphones feed an ES7210 4-channel ADC whose I2S output reaches the
# ESP32-S3 on GPIO16; the ESP32-S3 drives MCLK (GPIO2), SCLK (GPIO17) and LRCK (GPIO45).
# Pins as in Espressif's esp-bsp "esp-box-3" board support package.
#
# What MicroPython can do: machine.I2S can clock the bus and read the ES7210's I2S output
# (standard I2S, 16-bit, the microphone in the left slot), machine.I2C can reach the ES7210
# at address 0x40; the ES7210 must be configured over I2C before it outputs samples
# (clocking, gain, I2S format). Earshot does not ship that register sequence yet, so
# es_audio raises OSError naming this; see README, "From zero to a listening board".

NAME = "ESP32_S3_BOX_3"

MIC = {
    "kind": "es7210",  # I2S from an ES7210 ADC that needs I2C configuration first
    "id": 0,
    "mck": 2,
    "sck": 17,
    "ws": 45,
    "sd": 16,
    "bits": 16,
    "shift": 0,
    "ibuf": 8192,
    "i2c": {"id": 0, "scl": 18, "sda": 8, "addr": 0x40},
}
