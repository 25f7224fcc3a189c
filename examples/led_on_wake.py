# Light an LED for one second when the wake word is heard. LED_PIN is board-specific: 2 on
# many ESP32 DevKits; an ESP32-S3-DevKitC's RGB LED is a NeoPixel on GPIO 48 (use the
# `neopixel` module there). The LED is switched off from a one-shot timer, not in the loop.
import es_loop
from machine import Pin, Timer

LED_PIN = 2
led = Pin(LED_PIN, Pin.OUT, value=0)
timer = Timer(0)


def on_wake(hop, score):
    led.value(1)
    timer.init(mode=Timer.ONE_SHOT, period=1000, callback=lambda t: led.value(0))


es_loop.start(on_wake=on_wake)
