# Earshot: Espressif ESP32-S3-DevKitC-1 (8 MiB flash) with an INMP441 I2S microphone.
# Build with `earshot firmware build --board ESP32_S3_DEVKITC_INMP441`, or by hand:
#   make -C $MPY_DIR/ports/esp32 BOARD=ESP32_S3_DEVKITC_INMP441 BOARD_DIR=<this folder> \
#        USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
set(IDF_TARGET esp32s3)

# The partition table lives next to the board folders. sdkconfig fragments cannot expand
# CMake variables, so the fragment that names the table (by absolute path, which ESP-IDF
# uses as is) is written into the build folder here.
set(EARSHOT_PARTITIONS ${MICROPY_BOARD_DIR}/../partitions-8MiB-model.csv)
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.earshot_partitions
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${EARSHOT_PARTITIONS}\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.usb
    boards/sdkconfig.ble
    boards/sdkconfig.spiram_sx
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${CMAKE_BINARY_DIR}/sdkconfig.earshot_partitions
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
