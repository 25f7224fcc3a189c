# Earshot: Espressif ESP32-S3-BOX-3 (16 MiB flash, 16 MiB octal PSRAM, ES7210 microphone ADC
# and ES8311 codec on I2S0, both configured over I2C).
# Build with `earshot firmware build --board ESP32_S3_BOX_3`, or by hand:
#   make -C $MPY_DIR/ports/esp32 BOARD=ESP32_S3_BOX_3 BOARD_DIR=<this folder> \
#        USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
set(IDF_TARGET esp32s3)

# See ESP32_S3_DEVKITC_INMP441/mpconfigboard.cmake for why this fragment is generated.
set(EARSHOT_PARTITIONS ${MICROPY_BOARD_DIR}/../partitions-16MiB-model.csv)
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.earshot_partitions
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${EARSHOT_PARTITIONS}\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.usb
    boards/sdkconfig.ble
    boards/sdkconfig.240mhz
    boards/sdkconfig.spiram_oct
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${CMAKE_BINARY_DIR}/sdkconfig.earshot_partitions
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
