// Earshot: Espressif ESP32-S3-DevKitC-1 with an INMP441 I2S microphone (pins: es_board.py).
#define MICROPY_HW_BOARD_NAME               "ESP32-S3-DevKitC-1 + INMP441 (Earshot)"
#define MICROPY_HW_MCU_NAME                 "ESP32-S3"

// The DevKitC-1 has a USB-UART bridge on UART0 as well as the native USB port.
#define MICROPY_HW_ENABLE_UART_REPL         (1)

#define MICROPY_HW_I2C0_SCL                 (9)
#define MICROPY_HW_I2C0_SDA                 (8)
