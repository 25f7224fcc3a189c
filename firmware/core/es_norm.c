// Input normalisation: int8 log-mel -> int8 level above a per-bin adaptive floor.
//
// A model whose blob sets input_norm (es_model.h, header byte 46) sees, instead of the
// absolute log-mel x[b], how far each bin rises above a running estimate of its
// background. Stationary noise of any level and colour then reads as a small, constant
// excess, and a change of microphone gain does not move the features at all. The rule is
// the VAD's noise floor (es_vad.c, es_internal.h) with its own state, so the model's
// input never depends on the VAD's tuning: per hop, for each bin b, in Q4 steps,
//   d[b]     = 16 * x[b] - floor[b]                           (before the update)
//   out[b]   = clamp(floor((d[b] + 8) / 16) - 128, -128, 127)  (round half up)
//   floor[b] += floor(d[b] / 2)          if d[b] < 0          (falls fast: 1 hop)
//   floor[b] += floor(d[b] / 2^up_shift) otherwise            (rises slowly)
//   floor[b]  = max(floor[b], 16 * ES_NORM_MIN_FLOOR)
// During the first ES_VAD_PRIME_HOPS hops after reset (the frontend's window still
// holds the zeros from before the stream) the floor is set to max(x, min_floor) first.
// So out = -128 means "at or below the floor" and every step above it is 0.376 dB of
// power (es_tables.h). The shape follows the minimum-statistics noise estimate of
// R. Martin, "Noise power spectral density estimation based on optimal smoothing and
// minimum statistics", IEEE TSAP 9(5), 2001 (lower envelope of the smoothed power),
// simplified to asymmetric first-order tracking; microWakeWord's frontend (TFLM
// microfrontend noise_reduction + PCAN) serves the same purpose in the linear domain.
//
// Cost: about 10 integer operations per bin, no multiplies; state 84 bytes.
#include <string.h>

#include "es_internal.h"

size_t es_norm_mem_size(void) {
    return sizeof(es_norm_t) + ES_ALIGN_SLACK;
}

es_norm_t *es_norm_init(void *mem, size_t mem_len, unsigned up_shift) {
    if (mem == NULL || mem_len < es_norm_mem_size() || up_shift < 1 ||
        up_shift > ES_NORM_MAX_UP_SHIFT) {
        return NULL;
    }
    es_norm_t *n = es_align_ptr(mem);
    es_norm_setup(n, up_shift);
    return n;
}

void es_norm_setup(es_norm_t *n, unsigned up_shift) {
    memset(n, 0, sizeof(*n));
    n->up_shift = (uint8_t)up_shift;
}

void es_norm_reset(es_norm_t *n) {
    if (n != NULL) {
        memset(n->floor_q4, 0, sizeof(n->floor_q4));
        n->primed = 0;
    }
}

void es_norm_update(es_norm_t *n, const int8_t *x, int8_t *out) {
    const int32_t min_q4 = (int32_t)ES_NORM_MIN_FLOOR * 16;
    const unsigned up = n->up_shift;
    const int primed = n->primed >= ES_VAD_PRIME_HOPS;
    int16_t *floor_q4 = n->floor_q4;
    for (unsigned b = 0; b < ES_MEL_BINS; b++) {
        // |v|, |f| <= 16 * 128, so d and g stay far inside int32.
        const int32_t v = (int32_t)x[b] * 16;
        const int32_t f = primed ? floor_q4[b] : (v > min_q4 ? v : min_q4);
        const int32_t d = v - f;
        int32_t g;
        uint32_t q = 0;
        if (d < 0) {
            // f + floor(d / 2) = f - ceil(-d / 2) in unsigned arithmetic (es_internal.h).
            g = f - (int32_t)(((uint32_t)-d + 1u) >> 1);
        } else {
            g = f + (int32_t)((uint32_t)d >> up);
            // d <= 16 * (127 - ES_NORM_MIN_FLOOR) = 3824, so q <= 239 and q - 128 <= 111:
            // no clamp needed.
            q = ((uint32_t)d + 8u) >> 4;
        }
        out[b] = (int8_t)((int32_t)q - 128);
        floor_q4[b] = (int16_t)(g > min_q4 ? g : min_q4);
    }
    if (!primed) {
        n->primed++;
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
