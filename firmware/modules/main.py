# Earshot main.py: runs at boot after boot.py. Starts the wake-word detector when the
# configuration on flash (earshot.json, see es_config.py) sets "autostart": true; otherwise
# it returns to the REPL so tools (mpremote, earshot deploy) can take over. A configuration
# that cannot be read, or no valid model (es_loop.start), is said on the console and in a
# TEXT telemetry frame, and the board stays at the REPL for a new deploy.
import es_config

try:
    _cfg = es_config.load()
except (OSError, ValueError) as _exc:
    import es_loop
    from es_telemetry import Telemetry

    es_loop.say("earshot: not started: %s" % _exc, Telemetry())
    _cfg = None
if _cfg is not None and _cfg["autostart"]:
    import es_loop

    es_loop.start(_cfg)
