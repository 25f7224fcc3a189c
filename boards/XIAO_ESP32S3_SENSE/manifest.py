# Frozen into this board's firmware: the port's defaults, this board's definition
# (es_board.py: name and microphone) and Earshot's on-device modules and model.
include("$(PORT_DIR)/boards/manifest.py")
module("es_board.py")
include("../manifest_common.py")
