// Earshot on-device adaptation: what the es_adapt*.c files share (not public: the API and
// the design notes are in es_adapt.h).
//
// The adaptation is split by job, each file built only with adaptation (core.mk's
// EARSHOT_CORE_ADAPT_SRC, MICROPY_PY_EARSHOT_ADAPT in the binding's build files):
//   es_adapt.c        channel groups, statistics, the non-streaming forward pass
//   es_adapt_train.c  the fixed-point trainer and the acceptance check
//   es_adapt_write.c  the blob writer (requantized or pruned models)
//   es_adapt_prune.c  channel importance, selection, pruning
//   es_adapt_label.c  the pseudo-label rule (which outputs become training samples)
//
// Integer only: no float, no 64-bit division (a natmod links no libgcc; see es_adapt.h).
// 64-bit multiplies and shifts are fine (natmod_xtensa_rt.c provides them on Xtensa).
#ifndef ES_ADAPT_INTERNAL_H
#define ES_ADAPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "es_adapt.h"
#include "es_internal.h"
#include "es_model.h"

// Master weights are Q16 output quanta per input quantum, kept below 2^23 so that
// 254 * W fits int32 in the requantization; biases (Q16 output quanta) below 2^30.
#define ES_ADAPT_W_MAX ((int32_t)0x7FFFFF)
#define ES_ADAPT_B_MAX ((int32_t)0x3FFFFFFF)

// Channel groups of a model (see es_adapt.h).
typedef struct {
    uint16_t n_groups;
    uint16_t n_channels;
    uint16_t off[ES_MODEL_MAX_LAYERS];       // first channel of group g in keep / scores
    uint16_t ch[ES_MODEL_MAX_LAYERS];        // channels of group g
    uint8_t producer[ES_MODEL_MAX_LAYERS];   // CONV layer producing group g
    uint8_t consumer[ES_MODEL_MAX_LAYERS];   // CONV or FC layer consuming group g
    int8_t out_group[ES_MODEL_MAX_LAYERS];   // group of layer i's output channels, or -1
} es_adapt_layout_t;

struct es_adapt_stats_t {
    const es_model_t *m;
    es_adapt_layout_t lay;
    uint32_t windows;
    uint32_t rows[ES_MODEL_MAX_LAYERS];  // rows summed per group
    int32_t *sum;                        // sum of (a - zp) per channel
    uint32_t *abs_sum;                   // sum of |a - zp| per channel
};

struct es_adapt_trainer_t {
    const es_model_t *m;
    es_adapt_train_params_t p;
    uint16_t in;         // embedding bytes
    uint16_t out;        // channels of the trainable pointwise layer
    int32_t in_offset;   // pointwise input offset (-zp)
    int32_t lo;          // pointwise output clamp, Q16 quanta above its zero point
    int32_t hi;
    uint32_t seen;       // samples trained
    int32_t fc_b;        // FC bias, Q16 logit quanta
    int32_t *w;          // [out][in] Q16
    int32_t *b;          // [out] Q16
    int32_t *v;          // FC weights [out] Q16
    int32_t *h;          // activation row [out] Q16
};

// ---------------------------------------------------------------------------
// Arithmetic helpers

static inline int32_t es_adapt_abs32(int32_t x) {
    return x < 0 ? -x : x;
}

// round(x / 2^s), halves away from zero, 0 <= s <= 62.
static inline int64_t es_adapt_rshift_round(int64_t x, unsigned s) {
    if (s == 0) {
        return x;
    }
    const int64_t half = (int64_t)1 << (s - 1u);
    return x >= 0 ? es_asr64(x + half, s) : -es_asr64(-x + half, s);
}

// round(n / d), halves away from zero, d > 0, |n| + d / 2 within int32.
static inline int32_t es_adapt_round_div(int32_t n, int32_t d) {
    return n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d);
}

static inline int64_t es_adapt_clamp64(int64_t x, int64_t lim) {
    return x > lim ? lim : (x < -lim ? -lim : x);
}

// value * M * 2^16 with M = multiplier * 2^(shift - 31): the Q16 master copy of an int8
// weight or int32 bias. Returns 0 and leaves *q alone when shift > 15 (M >= 2^14).
static inline int es_adapt_to_q16(int64_t value, int32_t multiplier, int32_t shift,
    int64_t *q) {
    if (shift > 15) {
        return 0;
    }
    *q = es_adapt_rshift_round(value * multiplier, (unsigned)(15 - shift));
    return 1;
}

// ---------------------------------------------------------------------------
// Channel groups and statistics (es_adapt.c)

// The channel groups of m.
void es_adapt_layout(const es_model_t *m, es_adapt_layout_t *lay);

// Group whose channels enter layer i, or -1.
static inline int es_adapt_in_group(const es_adapt_layout_t *lay, uint16_t i) {
    return i == 0 ? -1 : lay->out_group[i - 1u];
}

// Mean of (a - zp) (signed) or |a - zp| of channel c of group g, Q8; 0 without rows.
int32_t es_adapt_mean_q8(const es_adapt_stats_t *s, int g, uint16_t c, int absolute);

// ---------------------------------------------------------------------------
// Blob writer (es_adapt_write.c): the model, optionally without some channels (keep) or
// with the trainer's layers requantized, laid out as blob.py:pack.

typedef struct {
    const es_model_t *m;
    const es_adapt_layout_t *lay;  // NULL: no pruning
    const uint8_t *keep;
    const es_adapt_stats_t *fix;   // non-NULL: fold removed channels' means into biases
    const es_adapt_trainer_t *t;   // non-NULL: requantize the trainable layers
    uint8_t *out;                  // NULL: dry run (sizes only)
    size_t pos;
} es_adapt_writer_t;

// Channels set in mask[0..n) (n for a NULL mask).
uint16_t es_adapt_count(const uint8_t *mask, uint16_t n);

// Dry run for the size, then (out non-NULL) the real write. ES_OK, or ES_E_ARG with *why.
int es_adapt_emit(es_adapt_writer_t *wr, uint8_t *out, size_t cap, size_t *out_len,
    const char **why);

#endif // ES_ADAPT_INTERNAL_H
