// Earshot: Seeed Studio XIAO ESP32S3 Sense (microphone: es_board.py).
#define MICROPY_HW_BOARD_NAME               "XIAO ESP32S3 Sense (Earshot)"
#define MICROPY_HW_MCU_NAME                 "ESP32-S3"

// Native USB only: the REPL is on USB CDC (sdkconfig.usb), not on a UART.
#define MICROPY_HW_ENABLE_UART_REPL         (0)

#define MICROPY_HW_I2C0_SCL                 (6)
#define MICROPY_HW_I2C0_SDA                 (5)
