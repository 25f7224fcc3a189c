# Earshot: Seeed Studio XIAO ESP32S3 Sense (8 MiB flash, 8 MiB octal PSRAM, PDM microphone on
# the camera/microphone expansion board).
# Build with `earshot firmware build --board XIAO_ESP32S3_SENSE`, or by hand:
#   make -C $MPY_DIR/ports/esp32 BOARD=XIAO_ESP32S3_SENSE BOARD_DIR=<this folder> \
#        USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
set(IDF_TARGET esp32s3)

# See ESP32_S3_DEVKITC_INMP441/mpconfigboard.cmake for why this fragment is generated.
set(EARSHOT_PARTITIONS ${MICROPY_BOARD_DIR}/../partitions-8MiB-model.csv)
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
