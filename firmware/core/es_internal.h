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

// Alignment of a handle placed in a caller's buffer: 4 bytes, or a pointer's size where that
// is larger (8 on 64-bit hosts; 4 on the ESP32-S3), since handles hold pointers (es_model_t,
// es_detector_t, es_engine_t, the adaptation handles) and a pointer read at an address that
// is not a multiple of its size is undefined behaviour (found by bench/fuzz.py).
#define ES_HANDLE_ALIGN (sizeof(void *) > 4u ? sizeof(void *) : 4u)

// Align a pointer up to ES_HANDLE_ALIGN bytes; returns NULL if p is NULL.
static inline void *es_align_ptr(void *p) {
    if (p == NULL) {
        return NULL;
    }
    uintptr_t a = (uintptr_t)p;
    return (uint8_t *)p + (ES_HANDLE_ALIGN - a % ES_HANDLE_ALIGN) % ES_HANDLE_ALIGN;
}

// Bytes lost at most when a caller's buffer is aligned up to ES_HANDLE_ALIGN bytes.
#define ES_ALIGN_SLACK (ES_HANDLE_ALIGN - 1u)

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
// VAD (es_vad.c; the rule and the public entry points are in earshot.h). The state is the
// public snapshot itself, so es_vad_get_state is a copy. The detector embeds one.
struct es_vad_t {
    es_vad_params_t p;
    es_vad_state_t s;
};

// es_vad_init on a struct the caller placed (the detector's): v not NULL. Returns ES_OK,
// or ES_E_ARG for parameters out of range (earshot.h); p NULL: the defaults.
int es_vad_setup(es_vad_t *v, const es_vad_params_t *p);

// ---------------------------------------------------------------------------
// First stage of the detector's gate (es_vad.c has the rule and the constants' sources):
// the level of a hop's first difference against an adaptive floor, on raw samples.
// State: 12 bytes.
typedef struct {
    uint32_t floor;    // floor of e (es_vad.c), >= ES_GATE_MIN_E once primed
    int16_t last;      // the previous hop's last sample
    uint16_t hold;     // hops left before the stage closes
    uint8_t primed;    // 0 after reset: the next hop sets the floor
    uint8_t run;       // consecutive hops above the onset, saturating at the confirm count
    uint8_t open;      // open after the last hop
    uint8_t reserved;
} es_gate_t;

#define ES_GATE_HANGOVER (50)  // hops open after the last onset hop (es_vad.c says why)

// Back to the state after init (floor unset, open for ES_GATE_HANGOVER hops). g not NULL.
void es_gate_reset(es_gate_t *g);
// One hop of ES_HOP_SAMPLES int16 samples; returns 1 if the first stage is open after it.
// g and samples not NULL.
int es_gate_update(es_gate_t *g, const int16_t *samples);

// ---------------------------------------------------------------------------
// Frontend (es_frontend.c): es_frontend_run of one hop without the argument checks, for the
// detector's hot path: ES_HOP_SAMPLES samples in, ES_MEL_BINS int8 features out. out NULL:
// only move the history on (what computing the hop would have left behind, no features).
// fe and samples not NULL.
void es_frontend_hop(es_frontend_t *fe, const int16_t *samples, int8_t *out);

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
// Posterior smoothing (es_posterior.c; the rule and the public entry points are in
// earshot.h). The detector embeds one.
struct es_posterior_t {
    uint8_t ring[ES_MAX_WINDOW];
    uint16_t sum;        // sum of ring (<= 255 * ES_MAX_WINDOW)
    uint8_t pos;         // next slot to overwrite
    uint8_t window;      // 1..ES_MAX_WINDOW
    uint8_t cutoff;      // 1..255
    uint8_t reserved;
    uint16_t refractory;
    uint16_t ignore;     // outputs left to ignore
};

// es_posterior_init on a struct the caller placed (the detector's): returns ES_OK, or
// ES_E_ARG for s NULL, window outside 1..ES_MAX_WINDOW or cutoff 0.
int es_posterior_setup(es_posterior_t *s, uint8_t cutoff, uint8_t window, uint16_t refractory);

#endif // ES_INTERNAL_H
