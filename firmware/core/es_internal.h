// Earshot C core: private helpers and internal APIs shared between the core's
// source files (not part of the public contract in earshot.h).
//
// Integer conventions used throughout the core:
// - Right shifts of negative values are implementation-defined in C99
//   (6.5.7p5) and left shifts of negative values are undefined (6.5.7p4), so
//   signed shifts go through es_asr32 / es_asr64 below, which are exact floor
//   divisions by a power of two on every conforming compiler (the exact-width
//   types are two's complement by definition, C99 7.18.1.1). GCC and Clang
//   compile them to a single arithmetic shift.
// - Signed values are scaled up by multiplying, never by shifting.
#ifndef ES_INTERNAL_H
#define ES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "earshot.h"

// Round a byte count up to a multiple of 4, the core's internal alignment.
#define ES_ALIGN4(n) (((size_t)(n) + 3u) & ~(size_t)3u)

// Align a pointer up to 4 bytes; returns NULL if p is NULL.
static inline void *es_align_ptr(void *p) {
    if (p == NULL) {
        return NULL;
    }
    uintptr_t a = (uintptr_t)p;
    return (uint8_t *)p + ((4u - (a & 3u)) & 3u);
}

// Bytes lost at most when a caller's buffer is aligned up to 4 bytes.
#define ES_ALIGN_SLACK (3u)

// floor(x / 2^s) for 0 <= s <= 31, without relying on implementation-defined
// shifts: for x < 0, ~x = -x - 1 >= 0 and ~(~x >> s) = floor(x / 2^s).
static inline int32_t es_asr32(int32_t x, unsigned s) {
    return x >= 0 ? (int32_t)((uint32_t)x >> s) : ~(int32_t)((uint32_t)~x >> s);
}

// floor(x / 2^s) for 0 <= s <= 63, as es_asr32.
static inline int64_t es_asr64(int64_t x, unsigned s) {
    return x >= 0 ? (int64_t)((uint64_t)x >> s) : ~(int64_t)((uint64_t)~x >> s);
}

static inline int32_t es_clamp32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

// ---------------------------------------------------------------------------
// VAD on int8 log-mel features (es_vad.c): per-bin SNR against an adaptive
// per-bin noise floor, with a bound on narrowband energy, onset confirmation and
// hangover.
//
// Per hop, for each of the ES_MEL_BINS bins b (features x[b] in int8 steps of
// 0.376 dB, 8 per octave of power, see es_tables.h; floors in Q4 steps):
//   d[b]   = 16 * x[b] - floor[b]                     (a posteriori SNR, Q4 steps)
//   excess = sum over b of clamp(d[b], -16 * cap, 16 * cap)
//   floor[b] += d[b] / 2^down_shift  if d[b] < 0       (falls fast)
//   floor[b] += d[b] / 2^up_shift    otherwise         (rises slowly)
//   floor[b]  = max(floor[b], 16 * min_floor)
// The hop is speech-like when excess >= 16 * ES_MEL_BINS * onset, i.e. when the
// spectrum lies on average `onset` steps above the noise's spectrum, bin by bin.
// Comparing bin by bin (rather than the total level) lets speech at a low SNR in
// coloured noise count where it rises above the noise, and the clamp bounds what
// a few bins can contribute, so narrowband sounds (tones, beeps, hum) do not open
// the gate on their own. The gate opens after `confirm` consecutive speech-like
// hops (a click or a sine switched on spans at most ES_WINDOW_SAMPLES /
// ES_HOP_SAMPLES hops of broadband energy) and stays open for `hangover` hops
// after the last one. While the frontend's first window still holds the zeros
// from before the stream (ES_VAD_PRIME_HOPS hops after reset), the floor is set
// to the features. Floors use es_asr32, so the divisions round towards minus
// infinity, as written.
//
// Cost: one pass over the ES_MEL_BINS bins, each a load, a scale, a subtraction,
// a clamp, an add and the floor update (a compare, a shift, an add, a max):
// about 12 integer operations per bin, plus a dozen per hop. bench/vad.py counts
// the instructions per call with callgrind.
typedef struct {
    int8_t onset;        // mean clamped per-bin SNR (steps) of a speech-like hop, >= 1
    int8_t min_floor;    // lowest floor of a bin, steps (int8 feature value)
    uint16_t hangover;   // hops the gate stays open after the last speech-like hop
    uint8_t down_shift;  // floor time constant while falling: 2^down_shift hops
    uint8_t up_shift;    // floor time constant while rising: 2^up_shift hops
    uint8_t cap;         // per-bin SNR clamped to +-cap steps, 1..127
    uint8_t confirm;     // consecutive speech-like hops that open the gate, >= 1
} es_vad_params_t;

#define ES_VAD_PRIME_HOPS ((ES_WINDOW_SAMPLES + ES_HOP_SAMPLES - 1) / ES_HOP_SAMPLES)

typedef struct {
    es_vad_params_t p;
    int16_t floor_q4[ES_MEL_BINS];  // per-bin noise floor, steps * 16
    int32_t excess_q4;  // sum of clamped per-bin SNRs at the last hop, steps * 16
    uint16_t hold;      // hops left before the gate closes
    uint8_t primed;     // hops seen, up to ES_VAD_PRIME_HOPS (floor = features)
    uint8_t run;        // consecutive speech-like hops, saturating at confirm
    uint8_t speech;     // the last hop was speech-like
    uint8_t open;       // gate state after the last update
    uint8_t reserved[2];
} es_vad_t;

// Writes the documented defaults (see es_vad.c) to *p.
void es_vad_default_params(es_vad_params_t *p);
// Initialises v with p (NULL: defaults). Returns ES_OK or ES_E_ARG (v NULL,
// onset < 1, cap outside 1..127, confirm 0, or a shift above 15).
int es_vad_init(es_vad_t *v, const es_vad_params_t *p);
// Back to the state after init (floors unset, gate closed), parameters kept.
void es_vad_reset(es_vad_t *v);
// Updates the floors with one hop of ES_MEL_BINS int8 features; returns 1 if
// the gate is open at this hop, else 0 (also for v or features NULL).
int es_vad_update(es_vad_t *v, const int8_t *features);

// ---------------------------------------------------------------------------
// Input normalisation (es_norm.c; public entry points in earshot.h).
#define ES_NORM_MIN_FLOOR (-112)      // lowest floor, int8 feature value (as the VAD's)
#define ES_NORM_SUBWINDOW_HOPS (80u)  // Martin's V (U = 2): minimum over 0.8 to 1.6 s

struct es_norm_t {
    int8_t prev[ES_MEL_BINS];  // minimum of the previous sub-window
    int8_t cur[ES_MEL_BINS];   // running minimum of the current one
    uint8_t gate[ES_MEL_BINS];  // steps subtracted per bin: the mode's (es_norm_set_mode)
    uint8_t hops;              // hops into the current sub-window
    uint8_t reserved[3];
};

// Set the mode (ES_NORM_MINSTAT or ES_NORM_MINSTAT_GATE, not checked): fills n->gate with 0
// or es_norm.c's gate row. Kept by es_norm_reset. A copy in the state (40 bytes) instead
// of a pointer to the table keeps es_norm_update within the hot-path code budget.
void es_norm_set_mode(es_norm_t *n, unsigned mode);

// One hop: x (ES_MEL_BINS int8) -> out (may equal x). n and the pointers not NULL.
void es_norm_update(es_norm_t *n, const int8_t *x, int8_t *out);

// ---------------------------------------------------------------------------
// Posterior smoothing (es_posterior.c), microWakeWord / ESPHome micro_wake_word
// style: a ring of the last `window` uint8 probabilities; a detection fires when
// their sum >= cutoff * window; then the ring is cleared and the next
// `refractory` outputs are ignored (not added to the ring).
typedef struct {
    uint8_t ring[ES_MAX_WINDOW];
    uint16_t sum;        // sum of ring (<= 255 * ES_MAX_WINDOW)
    uint8_t pos;         // next slot to overwrite
    uint8_t window;      // 1..ES_MAX_WINDOW
    uint8_t cutoff;      // 1..255
    uint8_t reserved;
    uint16_t refractory;
    uint16_t ignore;     // outputs left to ignore
} es_posterior_t;

// Returns ES_OK, or ES_E_ARG for s NULL, window outside 1..ES_MAX_WINDOW or
// cutoff 0 (which would detect on silence).
int es_posterior_init(es_posterior_t *s, uint8_t cutoff, uint8_t window, uint16_t refractory);
// Empties the ring (zeros) and ends any refractory period (as after init).
void es_posterior_clear(es_posterior_t *s);
// Adds one model output; returns 1 if a detection fires, else 0.
int es_posterior_push(es_posterior_t *s, uint8_t prob);

#endif // ES_INTERNAL_H
