// Earshot: Espressif ESP32-S3-BOX-3 (audio path: es_board.py).
#define MICROPY_HW_BOARD_NAME               "ESP32-S3-BOX-3 (Earshot)"
#define MICROPY_HW_MCU_NAME                 "ESP32-S3"

// Native USB only: the REPL is on USB CDC (sdkconfig.usb).
#define MICROPY_HW_ENABLE_UART_REPL         (0)

// The codec control bus (ES7210 at 0x40, ES8311 at 0x18, touch, sensors).
#define MICROPY_HW_I2C0_SCL                 (18)
#define MICROPY_HW_I2C0_SDA                 (8)
