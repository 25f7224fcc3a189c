// Input normalisation: int8 log-mel -> int8 level above a per-bin noise floor.
//
// A model whose blob sets input_norm (es_model.h, header byte 46) sees, instead of the
// absolute log-mel x[b], how far each bin rises above the background: stationary noise of
// any level and colour then reads as a small excess, and a change of microphone gain does
// not move the features at all.
//
// The floor is the minimum statistics noise estimate of R. Martin, "Noise power spectral
// density estimation based on optimal smoothing and minimum statistics", IEEE Trans.
// Speech and Audio Processing 9(5), 2001, with U = 2 sub-windows of V =
// ES_NORM_SUBWINDOW_HOPS (80) hops: the minimum of each bin over the current sub-window so
// far and the whole previous one, i.e. over the last 0.8 to 1.6 s. A word (well under
// 0.8 s) never lifts the floor, so the model sees the whole word as it is; when the
// background gets louder the floor follows within 1.6 s, when it gets quieter at once.
// The log-mel (a 30 ms window averaged over several FFT bins per mel band) is the
// smoothed periodogram; the minimum's bias below the mean noise level is a constant for
// stationary noise, which training absorbs.
//
// Per hop, for each bin b (int8 steps of 0.376 dB of power, es_tables.h):
//   cur[b]   = min(cur[b], x[b])                     running minimum of this sub-window
//   floor    = max(min(cur[b], prev[b]), ES_NORM_MIN_FLOOR)
//   out[b]   = max(x[b] - floor - gate[b], 0) - 128  (at most 127 - (-112) - 128 = 111)
// where gate[b] is 0 for ES_NORM_MINSTAT and es_norm_gate_steps[b] (below) for
// ES_NORM_MINSTAT_GATE,
// and after the V-th hop of a sub-window prev = cur and cur restarts at 127. After reset
// prev and cur hold 127 (no history). ES_NORM_MIN_FLOOR keeps digital silence (-128) from
// making every later sound look loud.
//
// Cost per hop: about 9 integer operations per bin, no multiplies; state 3 * ES_MEL_BINS
// + 4 bytes.
#include <string.h>

#include "es_internal.h"

// Noise gate of ES_NORM_MINSTAT_GATE, in steps, per bin: the 90th percentile of the bin's
// level above its floor in stationary white noise, measured through this frontend by
// research/tools/measure_norm_gate.py (its docstring has the method; tests/test_norm.py
// re-measures it). Subtracting it is a spectral subtraction in the log domain (S. Boll,
// "Suppression of acoustic noise in speech using spectral subtraction", IEEE Trans. ASSP
// 27(2), 1979) with the over-subtraction set per bin by the bin's own spread: the narrow
// low bands fluctuate most.
static const uint8_t es_norm_gate_steps[ES_MEL_BINS] = {
    45, 44, 42, 41, 39, 37, 38, 34, 36, 35,
    34, 31, 30, 31, 29, 28, 29, 29, 27, 27,
    27, 24, 25, 23, 23, 22, 21, 21, 20, 19,
    19, 19, 18, 18, 17, 17, 16, 16, 15, 14,
};

size_t es_norm_mem_size(void) {
    return sizeof(es_norm_t) + ES_ALIGN_SLACK;
}

es_norm_t *es_norm_init(void *mem, size_t mem_len, unsigned mode) {
    if (mem == NULL || mem_len < es_norm_mem_size() ||
        (mode != ES_NORM_MINSTAT && mode != ES_NORM_MINSTAT_GATE)) {
        return NULL;
    }
    es_norm_t *n = es_align_ptr(mem);
    es_norm_set_mode(n, mode);
    es_norm_reset(n);
    return n;
}

void es_norm_set_mode(es_norm_t *n, unsigned mode) {
    if (mode == ES_NORM_MINSTAT_GATE) {
        memcpy(n->gate, es_norm_gate_steps, sizeof(n->gate));
    } else {
        memset(n->gate, 0, sizeof(n->gate));
    }
}

void es_norm_reset(es_norm_t *n) {
    if (n != NULL) {
        memset(n->prev, 127, sizeof(n->prev));
        memset(n->cur, 127, sizeof(n->cur));
        n->hops = 0;
    }
}

void es_norm_update(es_norm_t *n, const int8_t *x, int8_t *out) {
    // The minima are kept of max(x, ES_NORM_MIN_FLOOR), which gives the rule above with one
    // compare less: then floor <= cur <= v, so out >= -128 needs no clamp. The sub-window
    // switch happens in the same pass (no memcpy / memset calls: less code on the hot path).
    const int last = ++n->hops == ES_NORM_SUBWINDOW_HOPS;
    int8_t *cur = n->cur, *prev = n->prev;
    for (unsigned b = 0; b < ES_MEL_BINS; b++) {
        const int32_t v = x[b] > ES_NORM_MIN_FLOOR ? x[b] : ES_NORM_MIN_FLOOR;
        int32_t c = cur[b] < v ? cur[b] : v;
        const int32_t f = prev[b] < c ? prev[b] : c;
        const int32_t above = v - f - n->gate[b];
        out[b] = (int8_t)((above > 0 ? above : 0) - 128);
        if (last) {
            prev[b] = (int8_t)c;
            c = 127;
        }
        cur[b] = (int8_t)c;
    }
    if (last) {
        n->hops = 0;
    }
}

void es_norm_run(es_norm_t *n, const int8_t *features, size_t n_hops, int8_t *out) {
    if (n == NULL || features == NULL || out == NULL) {
        return;
    }
    for (size_t h = 0; h < n_hops; h++) {
        es_norm_update(n, features + h * ES_MEL_BINS, out + h * ES_MEL_BINS);
    }
}
