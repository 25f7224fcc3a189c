# Publish an MQTT message when the wake word is heard (umqtt.simple: `mpremote mip install
# umqtt.simple`). Wi-Fi must be up first (network.WLAN). Fill in the broker and topic.
# The callback runs inside the detector loop: a publish costs one broker round trip, during
# which audio waits in the I2S DMA buffers (es_config's I2S settings size them).
import es_loop
from umqtt.simple import MQTTClient

BROKER = "192.168.1.10"
TOPIC = b"earshot/wake"
client = MQTTClient(b"earshot", BROKER)
client.connect()


def on_wake(hop, score):
    client.publish(TOPIC, b'{"hop": %d, "score": %.2f}' % (hop, score / 255))


es_loop.start(on_wake=on_wake)
