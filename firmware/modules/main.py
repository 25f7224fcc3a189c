# Earshot main.py: runs at boot after boot.py. Starts the wake-word detector when the
# configuration on flash (earshot.json, see es_config.py) sets "autostart": true; otherwise
# it returns to the REPL so tools (mpremote, earshot deploy) can take over.
import es_config

_cfg = es_config.load()
if _cfg["autostart"]:
    import es_loop

    es_loop.start(_cfg)
