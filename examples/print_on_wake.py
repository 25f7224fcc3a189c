# Print to the REPL when the wake word is heard (on the board: copy next to the Earshot
# modules, `mpremote run examples/print_on_wake.py`, or import it from main.py).
# on_wake(hop, score): hop counts 10 ms hops from the start of listening, score is the smoothed
# posterior 0..255 (divide by 255 for the 0-1 cutoff scale). Keep the callback short: it runs
# inside the detector loop.
import es_loop


def on_wake(hop, score):
    print("wake word at %.2f s (score %.2f)" % (hop / 100, score / 255))


es_loop.start(on_wake=on_wake)
