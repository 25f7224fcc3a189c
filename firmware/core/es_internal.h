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
// Energy VAD on int8 log-mel features (es_vad.c).
//
// Per hop: level = sum of the ES_MEL_BINS features (int8 steps of 0.376 dB, 8
// per octave of power, see es_tables.h). The noise floor (Q4, level units)
// falls fast and rises slowly:
//   level < floor: floor += (level - floor) / 2^down_shift   (fast)
//   otherwise:     floor += (level - floor) / 2^up_shift     (slow)
// and never drops below ES_MEL_BINS * min_floor. A hop whose level is at least
// ES_MEL_BINS * onset above the floor (before this hop's update) opens the gate;
// it stays open for hangover hops after the last such hop. During the first
// ES_WINDOW_SAMPLES / ES_HOP_SAMPLES hops after reset the floor is set to the
// level (the window still holds zeros from before the stream). About 60 integer
// operations per hop after the 40 additions of the level.
typedef struct {
    int8_t onset;        // per-bin steps above the floor that open the gate
    int8_t min_floor;    // lowest floor, per-bin steps (int8 feature value)
    uint16_t hangover;   // hops the gate stays open after the last onset hop
    uint8_t down_shift;  // floor time constant while falling: 2^down_shift hops
    uint8_t up_shift;    // floor time constant while rising: 2^up_shift hops
    uint8_t reserved[2];
} es_vad_params_t;

typedef struct {
    es_vad_params_t p;
    int32_t floor_q4;   // noise floor, level units * 16
    uint16_t hold;      // hops left before the gate closes
    uint8_t primed;     // hops seen, up to the window length in hops (floor = level)
    uint8_t open;       // gate state after the last update
} es_vad_t;

// Writes the documented defaults (see es_vad.c) to *p.
void es_vad_default_params(es_vad_params_t *p);
// Initialises v with p (NULL: defaults). Returns ES_OK or ES_E_ARG (v NULL,
// onset < 1 or a shift above 15).
int es_vad_init(es_vad_t *v, const es_vad_params_t *p);
void es_vad_reset(es_vad_t *v);
// Updates the floor with one hop of ES_MEL_BINS features; returns 1 if the gate
// is open at this hop, else 0.
int es_vad_update(es_vad_t *v, const int8_t *features);
// Level of one hop of features (sum of ES_MEL_BINS int8 values).
int32_t es_vad_level(const int8_t *features);

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
