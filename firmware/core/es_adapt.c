// Earshot on-device adaptation (API and design notes in es_adapt.h).
//
// Integer only: no float, no 64-bit division (a natmod links no libgcc; see es_adapt.h).
// 64-bit multiplies and shifts are fine (natmod_xtensa_rt.c provides them on Xtensa).
#include <string.h>

#include "es_adapt.h"
#include "es_internal.h"
#include "es_model.h"
#include "es_nn.h"

// Master weights are Q16 output quanta per input quantum, kept below 2^23 so that
// 254 * W fits int32 in the requantization; biases (Q16 output quanta) below 2^30.
#define ES_ADAPT_W_MAX ((int32_t)0x7FFFFF)
#define ES_ADAPT_B_MAX ((int32_t)0x3FFFFFFF)
// Statistics sums are halved (with the row count) once one reaches this, so that
// sum * 256 fits int32 when the mean is taken.
#define ES_ADAPT_SUM_LIMIT (1u << 22)
// round(2^37 / 127): 1 / 127 in Q37, for the multiplier of max|W| / 127.
#define ES_ADAPT_INV127_Q37 (1082196484u)
// Largest trainer learning rate (1.0 in Q24) and sample weight, bounding the int64 products.
#define ES_ADAPT_LR_MAX (1 << 24)
#define ES_ADAPT_WEIGHT_MAX (16u)
#define ES_ADAPT_ANCHOR_SHIFT_MAX (30u)
// Step of the sample shuffle (a prime; reduced and made coprime to n at run time).
#define ES_ADAPT_SHUFFLE_STEP (7919u)

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
// Helpers

static int32_t es_adapt_abs32(int32_t x) {
    return x < 0 ? -x : x;
}

// round(x / 2^s), halves away from zero, 0 <= s <= 62.
static int64_t es_adapt_rshift_round(int64_t x, unsigned s) {
    if (s == 0) {
        return x;
    }
    const int64_t half = (int64_t)1 << (s - 1u);
    return x >= 0 ? es_asr64(x + half, s) : -es_asr64(-x + half, s);
}

// round(n / d), halves away from zero, d > 0, |n| + d / 2 within int32.
static int32_t es_adapt_round_div(int32_t n, int32_t d) {
    return n >= 0 ? (n + d / 2) / d : -((-n + d / 2) / d);
}

static int64_t es_adapt_clamp64(int64_t x, int64_t lim) {
    return x > lim ? lim : (x < -lim ? -lim : x);
}

// value * M * 2^16 with M = multiplier * 2^(shift - 31): the Q16 master copy of an int8
// weight or int32 bias. Returns 0 and leaves *q alone when shift > 15 (M >= 2^14).
static int es_adapt_to_q16(int64_t value, int32_t multiplier, int32_t shift, int64_t *q) {
    if (shift > 15) {
        return 0;
    }
    *q = es_adapt_rshift_round(value * multiplier, (unsigned)(15 - shift));
    return 1;
}

// TFLite QuantizeMultiplier of amax / (127 * 2^16), 1 <= amax <= ES_ADAPT_W_MAX: multiplier in
// [2^30, 2^31), shift = d - 22 in [-22, 0].
static void es_adapt_quantize_multiplier(int32_t amax, int32_t *multiplier, int32_t *shift) {
    uint64_t t = (uint64_t)(uint32_t)amax * ES_ADAPT_INV127_Q37;  // amax / 127 in Q37
    unsigned bits = 0;
    for (uint64_t x = t; x != 0; x >>= 1) {
        bits++;
    }
    unsigned d = bits > 31u ? bits - 31u : 0u;
    uint64_t mult = d == 0 ? t : (t + ((uint64_t)1 << (d - 1u))) >> d;
    if (mult >= (uint64_t)1 << 31) {
        mult >>= 1;
        d++;
    }
    while (mult < (uint64_t)1 << 30) {  // only for t < 2^30, i.e. never for amax >= 1
        mult <<= 1;
        d--;
    }
    *multiplier = (int32_t)mult;
    *shift = (int32_t)d - 22;
}

static void es_adapt_wr16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void es_adapt_wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

// Output rows of layer i when the network runs on one window of input_frames rows.
static size_t es_adapt_out_len(const es_model_t *m, uint16_t i) {
    size_t len = m->info.input_frames;
    for (uint16_t j = 0; j <= i; j++) {
        len = es_nn_out_len(len, m->layers[j].kernel, m->layers[j].stride);
    }
    return len;
}

static void es_adapt_layout(const es_model_t *m, es_adapt_layout_t *lay) {
    memset(lay, 0, sizeof(*lay));
    const uint16_t n = m->info.n_layers;
    int8_t cur = -1;
    for (uint16_t i = 0; i < n; i++) {
        const es_model_layer_t *l = &m->layers[i];
        if (l->type == ES_LAYER_DEPTHWISE) {
            lay->out_group[i] = cur;
            continue;
        }
        cur = -1;
        if (l->type == ES_LAYER_CONV && i + 1u < n) {
            uint16_t j = (uint16_t)(i + 1u);
            while (j < n && m->layers[j].type == ES_LAYER_DEPTHWISE) {
                j++;
            }
            if (j < n) {
                const uint16_t g = lay->n_groups++;
                lay->off[g] = lay->n_channels;
                lay->ch[g] = l->out_ch;
                lay->producer[g] = (uint8_t)i;
                lay->consumer[g] = (uint8_t)j;
                lay->n_channels = (uint16_t)(lay->n_channels + l->out_ch);
                cur = (int8_t)g;
            }
        }
        lay->out_group[i] = cur;
    }
}

// Group whose channels enter layer i, or -1.
static int es_adapt_in_group(const es_adapt_layout_t *lay, uint16_t i) {
    return i == 0 ? -1 : lay->out_group[i - 1u];
}

size_t es_adapt_embedding_size(const es_model_t *m, const char **why) {
    const char *reason = NULL;
    if (m == NULL) {
        reason = "model is NULL";
    } else if (m->info.n_layers < 3) {
        reason = "model cannot be adapted: fewer than 3 layers";
    } else {
        const uint16_t n = m->info.n_layers;
        const es_model_layer_t *fc = &m->layers[n - 1u];
        const es_model_layer_t *pw = &m->layers[n - 2u];
        if (fc->type != ES_LAYER_FC || fc->bias == NULL) {
            reason = "model cannot be adapted: last layer is not a fully connected with bias";
        } else if (pw->type != ES_LAYER_CONV || pw->kernel != 1 || pw->stride != 1
                   || pw->bias == NULL) {
            reason = "model cannot be adapted: layer n-2 is not a pointwise conv with bias";
        } else if (es_adapt_out_len(m, (uint16_t)(n - 3u)) != 1) {
            reason = "model cannot be adapted: the pointwise input is not one row";
        }
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? m->layers[m->info.n_layers - 2u].in_ch : 0;
}

// ---------------------------------------------------------------------------
// Statistics

size_t es_adapt_stats_mem_size(const es_model_t *m) {
    if (m == NULL) {
        return 0;
    }
    es_adapt_layout_t lay;
    es_adapt_layout(m, &lay);
    return ES_ALIGN_SLACK + ES_ALIGN4(sizeof(es_adapt_stats_t)) + 8u * lay.n_channels;
}

es_adapt_stats_t *es_adapt_stats_init(void *mem, size_t mem_len, const es_model_t *m) {
    if (mem == NULL || m == NULL || mem_len < es_adapt_stats_mem_size(m)) {
        return NULL;
    }
    es_adapt_stats_t *s = es_align_ptr(mem);
    memset(s, 0, sizeof(*s));
    s->m = m;
    es_adapt_layout(m, &s->lay);
    s->sum = (int32_t *)(void *)((uint8_t *)s + ES_ALIGN4(sizeof(es_adapt_stats_t)));
    s->abs_sum = (uint32_t *)(void *)(s->sum + s->lay.n_channels);
    es_adapt_stats_reset(s);
    return s;
}

void es_adapt_stats_reset(es_adapt_stats_t *s) {
    if (s == NULL) {
        return;
    }
    s->windows = 0;
    memset(s->rows, 0, sizeof(s->rows));
    memset(s->sum, 0, 4u * s->lay.n_channels);
    memset(s->abs_sum, 0, 4u * s->lay.n_channels);
}

size_t es_adapt_stats_channels(const es_adapt_stats_t *s) {
    return s == NULL ? 0 : s->lay.n_channels;
}

size_t es_adapt_stats_groups(const es_adapt_stats_t *s) {
    return s == NULL ? 0 : s->lay.n_groups;
}

uint32_t es_adapt_stats_windows(const es_adapt_stats_t *s) {
    return s == NULL ? 0 : s->windows;
}

size_t es_adapt_group_channels(const es_adapt_stats_t *s, size_t g) {
    return s == NULL || g >= s->lay.n_groups ? 0 : s->lay.ch[g];
}

// Add the rows x [len][ch] entering the consumer of group g (input offset in_offset).
static void es_adapt_stats_add(es_adapt_stats_t *s, int g, const int8_t *x, size_t len,
    int32_t in_offset) {
    const uint16_t ch = s->lay.ch[g];
    int32_t *sum = s->sum + s->lay.off[g];
    uint32_t *abs_sum = s->abs_sum + s->lay.off[g];
    uint32_t top = 0;
    for (uint16_t c = 0; c < ch; c++) {
        int32_t acc = 0;
        uint32_t abs_acc = 0;
        for (size_t r = 0; r < len; r++) {
            const int32_t a = (int32_t)x[r * ch + c] + in_offset;
            acc += a;
            abs_acc += (uint32_t)es_adapt_abs32(a);
        }
        sum[c] += acc;
        abs_sum[c] += abs_acc;
        top = abs_sum[c] > top ? abs_sum[c] : top;
    }
    s->rows[g] += (uint32_t)len;
    if (top >= ES_ADAPT_SUM_LIMIT) {
        for (uint16_t c = 0; c < ch; c++) {
            sum[c] = es_asr32(sum[c], 1);
            abs_sum[c] >>= 1;
        }
        s->rows[g] = (s->rows[g] + 1u) >> 1;
    }
}

// Mean of (a - zp) (signed) or |a - zp| of channel c of group g, Q8; 0 without rows.
static int32_t es_adapt_mean_q8(const es_adapt_stats_t *s, int g, uint16_t c, int absolute) {
    const uint32_t rows = s->rows[g];
    if (rows == 0) {
        return 0;
    }
    const uint16_t k = (uint16_t)(s->lay.off[g] + c);
    if (absolute) {
        return (int32_t)((s->abs_sum[k] * 256u) / rows);
    }
    const int32_t v = s->sum[k] * 256;
    return v >= 0 ? (int32_t)((uint32_t)v / rows) : -(int32_t)((uint32_t)(-v) / rows);
}

// ---------------------------------------------------------------------------
// Forward pass

size_t es_adapt_forward_scratch_size(const es_model_t *m) {
    if (m == NULL) {
        return 0;
    }
    size_t top = 0;
    for (uint16_t i = 0; i < m->info.n_layers; i++) {
        size_t bytes = es_adapt_out_len(m, i) * m->layers[i].out_ch;
        top = bytes > top ? bytes : top;
    }
    return ES_ALIGN_SLACK + 2u * ES_ALIGN4(top);
}

int es_adapt_forward(const es_model_t *m, const int8_t *window, void *scratch,
    size_t scratch_len, es_adapt_stats_t *stats, int8_t *emb, int8_t *logit) {
    if (m == NULL || window == NULL || scratch == NULL || logit == NULL
        || scratch_len < es_adapt_forward_scratch_size(m) || (stats != NULL && stats->m != m)
        || (emb != NULL && es_adapt_embedding_size(m, NULL) == 0)) {
        return ES_E_ARG;
    }
    const uint16_t n = m->info.n_layers;
    const size_t half = (es_adapt_forward_scratch_size(m) - ES_ALIGN_SLACK) / 2u;
    int8_t *buf[2];
    buf[0] = es_align_ptr(scratch);
    buf[1] = buf[0] + half;
    const int8_t *in = window;
    size_t len = m->info.input_frames;
    for (uint16_t i = 0; i < n; i++) {
        const es_model_layer_t *l = &m->layers[i];
        if (stats != NULL) {
            const int g = es_adapt_in_group(&stats->lay, i);
            if (g >= 0 && stats->lay.consumer[g] == i) {
                es_adapt_stats_add(stats, g, in, len, l->input_offset);
            }
        }
        if (emb != NULL && i + 2u == n) {
            memcpy(emb, in, l->in_ch);  // one row (checked by es_adapt_embedding_size)
        }
        int8_t *out = buf[i & 1u];
        const es_nn_params_t p = {
            .in_len = (uint16_t)len,
            .in_ch = l->in_ch,
            .out_ch = l->out_ch,
            .kernel = l->kernel,
            .stride = l->stride,
            .input_offset = l->input_offset,
            .output_offset = l->output_offset,
            .act_min = l->act_min,
            .act_max = l->act_max,
        };
        const es_nn_quant_t q = {.multiplier = l->multiplier, .shift = l->shift};
        if (l->type == ES_LAYER_DEPTHWISE) {
            es_nn_depthwise(&p, &q, in, l->weights, l->bias, out);
        } else if (l->type == ES_LAYER_CONV) {
            es_nn_conv(&p, &q, in, l->weights, l->bias, out);
        } else {
            es_nn_fully_connected(&p, &q, in, l->weights, l->bias, out);
        }
        len = l->type == ES_LAYER_FC ? 1u : es_nn_out_len(len, l->kernel, l->stride);
        in = out;
    }
    if (stats != NULL) {
        stats->windows++;
    }
    *logit = in[len - 1u];
    return ES_OK;
}

// ---------------------------------------------------------------------------
// Trainer

size_t es_adapt_trainer_mem_size(const es_model_t *m) {
    const size_t in = es_adapt_embedding_size(m, NULL);
    if (in == 0) {
        return 0;
    }
    const size_t out = m->layers[m->info.n_layers - 2u].out_ch;
    return ES_ALIGN_SLACK + ES_ALIGN4(sizeof(es_adapt_trainer_t)) + 4u * (in * out + 3u * out);
}

es_adapt_trainer_t *es_adapt_trainer_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_adapt_train_params_t *params, const char **why) {
    const char *reason = NULL;
    es_adapt_trainer_t *t = NULL;
    if (mem == NULL || m == NULL || params == NULL) {
        reason = "trainer: NULL argument";
    } else if (es_adapt_embedding_size(m, &reason) == 0) {
        // reason set
    } else if (mem_len < es_adapt_trainer_mem_size(m)) {
        reason = "trainer: buffer smaller than es_adapt_trainer_mem_size()";
    } else if (params->lr_q24 < 0 || params->lr_q24 > ES_ADAPT_LR_MAX) {
        reason = "trainer: learning rate outside [0, 1]";
    } else if (params->distill_gain < 1) {
        reason = "trainer: distill_gain must be >= 1";
    } else if (params->anchor_shift > ES_ADAPT_ANCHOR_SHIFT_MAX) {
        reason = "trainer: anchor_shift must be 0..30";
    } else if (params->pos_weight < 1 || params->pos_weight > ES_ADAPT_WEIGHT_MAX
               || params->neg_weight < 1 || params->neg_weight > ES_ADAPT_WEIGHT_MAX) {
        reason = "trainer: sample weights outside 1..16";
    } else {
        t = es_align_ptr(mem);
        memset(t, 0, sizeof(*t));
        const uint16_t n = m->info.n_layers;
        const es_model_layer_t *pw = &m->layers[n - 2u];
        const es_model_layer_t *fc = &m->layers[n - 1u];
        t->m = m;
        t->p = *params;
        t->in = pw->in_ch;
        t->out = pw->out_ch;
        t->in_offset = pw->input_offset;
        t->lo = (pw->act_min - pw->output_offset) * 65536;
        t->hi = (pw->act_max - pw->output_offset) * 65536;
        t->w = (int32_t *)(void *)((uint8_t *)t + ES_ALIGN4(sizeof(es_adapt_trainer_t)));
        t->b = t->w + (size_t)t->in * t->out;
        t->v = t->b + t->out;
        t->h = t->v + t->out;
        int ok = 1;
        int64_t q = 0;
        for (uint16_t c = 0; c < t->out && ok; c++) {
            for (uint16_t i = 0; i < t->in && ok; i++) {
                ok = es_adapt_to_q16(pw->weights[(size_t)c * t->in + i], pw->multiplier[c],
                    pw->shift[c], &q) && q <= ES_ADAPT_W_MAX && q >= -ES_ADAPT_W_MAX;
                t->w[(size_t)c * t->in + i] = (int32_t)q;
            }
            ok = ok && es_adapt_to_q16(pw->bias[c], pw->multiplier[c], pw->shift[c], &q)
                 && q <= ES_ADAPT_B_MAX && q >= -ES_ADAPT_B_MAX;
            t->b[c] = (int32_t)q;
            ok = ok && es_adapt_to_q16(fc->weights[c], fc->multiplier[0], fc->shift[0], &q)
                 && q <= ES_ADAPT_W_MAX && q >= -ES_ADAPT_W_MAX;
            t->v[c] = (int32_t)q;
        }
        ok = ok && es_adapt_to_q16(fc->bias[0], fc->multiplier[0], fc->shift[0], &q)
             && q <= ES_ADAPT_B_MAX && q >= -ES_ADAPT_B_MAX;
        t->fc_b = (int32_t)q;
        if (!ok) {
            reason = "trainer: weights too large for the Q16 master copy";
            t = NULL;
        }
    }
    if (why != NULL) {
        *why = reason;
    }
    return t;
}

uint32_t es_adapt_sample_macs(const es_adapt_trainer_t *t) {
    if (t == NULL) {
        return 0;
    }
    const uint32_t params = (uint32_t)t->in * t->out + 2u * t->out + 1u;
    return 2u * t->in * t->out + 3u * t->out + 1u + (t->p.anchor_shift ? params : 0u);
}

uint32_t es_adapt_trainer_samples(const es_adapt_trainer_t *t) {
    return t == NULL ? 0 : t->seen;
}

// Forward: t->h gets the clamped pointwise outputs (Q16 quanta above the zero point);
// returns the logit in Q16 quanta (before the FC output zero point).
static int64_t es_adapt_head(const es_adapt_trainer_t *t, const int8_t *emb) {
    int64_t z = (int64_t)t->fc_b * 65536;
    for (uint16_t c = 0; c < t->out; c++) {
        const int32_t *w = t->w + (size_t)c * t->in;
        int64_t y = t->b[c];
        for (uint16_t i = 0; i < t->in; i++) {
            y += (int64_t)w[i] * ((int32_t)emb[i] + t->in_offset);
        }
        y = y < t->lo ? t->lo : (y > t->hi ? t->hi : y);
        t->h[c] = (int32_t)y;
        z += (int64_t)t->v[c] * y;
    }
    return es_adapt_rshift_round(z, 16);
}

static int8_t es_adapt_logit_of(const es_adapt_trainer_t *t, int64_t z_q16) {
    const es_model_layer_t *fc = &t->m->layers[t->m->info.n_layers - 1u];
    int64_t q = es_adapt_rshift_round(z_q16, 16) + fc->output_offset;
    q = q < fc->act_min ? fc->act_min : (q > fc->act_max ? fc->act_max : q);
    return (int8_t)q;
}

int8_t es_adapt_trainer_logit(const es_adapt_trainer_t *t, const int8_t *emb) {
    if (t == NULL || emb == NULL) {
        return 0;
    }
    return es_adapt_logit_of(t, es_adapt_head(t, emb));
}

uint32_t es_adapt_check_macs(const es_adapt_trainer_t *t) {
    return t == NULL ? 0 : (uint32_t)t->in * t->out + 2u * t->out + 1u;
}

int es_adapt_check(const es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, size_t start, size_t count, es_adapt_check_t *acc) {
    if (t == NULL || emb == NULL || labels == NULL || targets == NULL || acc == NULL
        || start > n || count > n - start) {
        return ES_E_ARG;
    }
    const uint8_t cutoff = t->m->info.cutoff;
    for (size_t i = start; i < start + count; i++) {
        if (labels[i] != ES_ADAPT_LABEL_CHECK) {
            continue;
        }
        const int8_t logit = es_adapt_logit_of(t,
            es_adapt_head(t, emb + i * t->in));
        const int32_t d = (int32_t)logit - targets[i];
        acc->n++;
        acc->rise += d;
        acc->above += d > 0;
        acc->fires += es_model_probability(t->m, logit) >= cutoff;
    }
    return ES_OK;
}

// L2-SP pull of every trainable parameter towards the model's own (params->anchor_shift):
// the starting values are recomputed from the int8 model as es_adapt_trainer_init did.
static void es_adapt_anchor(es_adapt_trainer_t *t) {
    const uint16_t n = t->m->info.n_layers;
    const es_model_layer_t *pw = &t->m->layers[n - 2u];
    const es_model_layer_t *fc = &t->m->layers[n - 1u];
    const unsigned k = t->p.anchor_shift;
    int64_t q = 0;
    for (uint16_t c = 0; c < t->out; c++) {
        int32_t *w = t->w + (size_t)c * t->in;
        for (uint16_t i = 0; i < t->in; i++) {
            (void)es_adapt_to_q16(pw->weights[(size_t)c * t->in + i], pw->multiplier[c],
                pw->shift[c], &q);  // succeeded in es_adapt_trainer_init
            w[i] += (int32_t)es_adapt_rshift_round(q - w[i], k);
        }
        (void)es_adapt_to_q16(pw->bias[c], pw->multiplier[c], pw->shift[c], &q);
        t->b[c] += (int32_t)es_adapt_rshift_round(q - t->b[c], k);
        (void)es_adapt_to_q16(fc->weights[c], fc->multiplier[0], fc->shift[0], &q);
        t->v[c] += (int32_t)es_adapt_rshift_round(q - t->v[c], k);
    }
    (void)es_adapt_to_q16(fc->bias[0], fc->multiplier[0], fc->shift[0], &q);
    t->fc_b += (int32_t)es_adapt_rshift_round(q - t->fc_b, k);
}

// One SGD step of the head on emb with lr * dL/dlogit = lre (Q24).
static void es_adapt_step(es_adapt_trainer_t *t, const int8_t *emb, int64_t lre) {
    for (uint16_t c = 0; c < t->out; c++) {
        const int32_t h = t->h[c];
        // The gradient reaches the pointwise layer only where its output is not clamped.
        if (h > t->lo && h < t->hi) {
            const int64_t g32 = es_adapt_rshift_round(lre * t->v[c], 16);  // Q32
            int32_t *w = t->w + (size_t)c * t->in;
            for (uint16_t i = 0; i < t->in; i++) {
                const int64_t x = (int32_t)emb[i] + t->in_offset;
                const int64_t nw = w[i] - es_adapt_rshift_round(g32 * x, 16);
                w[i] = (int32_t)es_adapt_clamp64(nw, ES_ADAPT_W_MAX);
            }
            const int64_t nb = t->b[c] - es_adapt_rshift_round(g32, 16);
            t->b[c] = (int32_t)es_adapt_clamp64(nb, ES_ADAPT_B_MAX);
        }
        const int64_t nv = t->v[c] - es_adapt_rshift_round(lre * h, 32);
        t->v[c] = (int32_t)es_adapt_clamp64(nv, ES_ADAPT_W_MAX);
    }
    const int64_t nb = t->fc_b - es_adapt_rshift_round(lre, 16);
    t->fc_b = (int32_t)es_adapt_clamp64(nb, ES_ADAPT_B_MAX);
}

static void es_adapt_train_one(es_adapt_trainer_t *t, const int8_t *emb, uint8_t label,
    const int8_t *target) {
    const int8_t logit = es_adapt_logit_of(t, es_adapt_head(t, emb));
    const int32_t p = es_model_probability(t->m, logit);
    int32_t e;
    if (label == ES_ADAPT_LABEL_DISTILL) {
        // Match the teacher's logit from both sides (an L2 loss on logits).
        const int32_t d = target == NULL ? 0 : (int32_t)logit - *target;
        e = es_clamp32(d * t->p.distill_gain, -255, 255) * t->p.neg_weight;
    } else if (label == ES_ADAPT_LABEL_POSITIVE) {
        // dL/dlogit = p - 1 (BCE on a sigmoid), in 1/255 ~ 1/256 steps, weighted.
        e = (p - 255) * t->p.pos_weight;
    } else if (target != NULL) {
        // Hinge on the teacher's logit: a negative may not score above it.
        const int32_t over = (int32_t)logit - *target;
        e = over > 0 ? es_clamp32(over * t->p.distill_gain, 0, 255) * t->p.neg_weight : 0;
    } else {
        e = p * t->p.neg_weight;  // dL/dlogit = p - 0
    }
    const int64_t lre = (int64_t)t->p.lr_q24 * e;  // lr * e, Q24 (|.| < 2^36)
    if (lre != 0) {
        es_adapt_step(t, emb, lre);
    }
    if (t->p.anchor_shift) {
        es_adapt_anchor(t);
    }
}

static uint32_t es_adapt_gcd(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

size_t es_adapt_train_slice(es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, uint32_t max_macs) {
    if (t == NULL || emb == NULL || labels == NULL || n == 0 || n > 0xFFFFu) {
        return 0;
    }
    const uint32_t cost = es_adapt_sample_macs(t);
    uint32_t step = ES_ADAPT_SHUFFLE_STEP % (uint32_t)n;
    step = step == 0 ? 1u : step;
    while (es_adapt_gcd(step, (uint32_t)n) != 1u) {
        step++;
    }
    size_t done = 0;
    size_t skipped = 0;  // consecutive empty slots: a buffer of only empty slots ends the slice
    while (max_macs >= cost && skipped < n) {
        const uint32_t k = t->seen;
        const uint32_t idx = ((k % (uint32_t)n) * step + k / (uint32_t)n) % (uint32_t)n;
        t->seen++;
        done++;
        if (labels[idx] > ES_ADAPT_LABEL_DISTILL) {
            skipped++;
            continue;
        }
        skipped = 0;
        es_adapt_train_one(t, emb + (size_t)idx * t->in, labels[idx],
            targets == NULL ? NULL : targets + idx);
        max_macs -= cost;
    }
    return done;
}

// ---------------------------------------------------------------------------
// Blob writer: the model, optionally without some channels (keep) or with the trainer's
// layers requantized, laid out as blob.py:pack (header, layer table, per layer weights,
// bias, multiplier, shift, then the logistic table).

typedef struct {
    const es_model_t *m;
    const es_adapt_layout_t *lay;  // NULL: no pruning
    const uint8_t *keep;
    const es_adapt_stats_t *fix;   // non-NULL: fold removed channels' means into biases
    const es_adapt_trainer_t *t;   // non-NULL: requantize the trainable layers
    uint8_t *out;                  // NULL: dry run (sizes only)
    size_t pos;
} es_adapt_writer_t;

static const uint8_t *es_adapt_mask(const es_adapt_writer_t *wr, int g) {
    return wr->lay == NULL || g < 0 ? NULL : wr->keep + wr->lay->off[g];
}

static uint16_t es_adapt_count(const uint8_t *mask, uint16_t n) {
    if (mask == NULL) {
        return n;
    }
    uint16_t k = 0;
    for (uint16_t c = 0; c < n; c++) {
        k = (uint16_t)(k + (mask[c] != 0));
    }
    return k;
}

// Start an array at the writer's position: returns its offset.
static uint32_t es_adapt_begin(es_adapt_writer_t *wr) {
    wr->pos = ES_ALIGN4(wr->pos);
    return (uint32_t)wr->pos;
}

static void es_adapt_put8(es_adapt_writer_t *wr, int32_t v) {
    if (wr->out != NULL) {
        wr->out[wr->pos] = (uint8_t)v;
    }
    wr->pos++;
}

static void es_adapt_put32(es_adapt_writer_t *wr, int32_t v) {
    if (wr->out != NULL) {
        es_adapt_wr32(wr->out + wr->pos, (uint32_t)v);
    }
    wr->pos += 4u;
}

// The largest |W| of row c of a trained layer (1 at least).
static int32_t es_adapt_row_amax(const int32_t *row, uint16_t n) {
    int32_t amax = 1;
    for (uint16_t i = 0; i < n; i++) {
        const int32_t a = es_adapt_abs32(row[i]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

// The requantization scale of one trained output row: its largest |W| (Q16), raised where
// needed so that the rewritten bias, round(127 * b / scale), stays within +-2^30. A row
// whose weights all went to about 0 (a channel that training switched off, e.g. by network
// slimming) but kept a bias then keeps that bias, with int8 weights near 0, instead of
// making the write fail. 32-bit arithmetic only (no libgcc in a natmod):
// 127 * |b| / (|b| / (B_MAX / 127) + 1) < 127 * (B_MAX / 127) <= B_MAX.
static int32_t es_adapt_row_scale(const int32_t *row, uint16_t n, int32_t b) {
    const int32_t amax = es_adapt_row_amax(row, n);
    const int32_t need = es_adapt_abs32(b) / (ES_ADAPT_B_MAX / 127) + 1;
    return need > amax ? need : amax;
}

// round(127 * b / amax) for a Q16 bias b (|b| <= 2^30), without 64-bit division.
static int64_t es_adapt_requant_bias(int32_t b, int32_t amax) {
    const int32_t q = b / amax;
    const int32_t r = b % amax;
    return (int64_t)q * 127 + es_adapt_round_div(r * 127, amax);
}

// Write layer i's four arrays; rec gets the offsets and sizes.
static const char *es_adapt_write_layer(es_adapt_writer_t *wr, uint16_t i, uint32_t *rec) {
    const es_model_t *m = wr->m;
    const es_model_layer_t *l = &m->layers[i];
    const uint16_t n = m->info.n_layers;
    const int gin = wr->lay == NULL ? -1 : es_adapt_in_group(wr->lay, i);
    const uint8_t *in_mask = es_adapt_mask(wr, gin);
    const uint8_t *out_mask = es_adapt_mask(wr, wr->lay == NULL ? -1 : wr->lay->out_group[i]);
    if (l->type == ES_LAYER_DEPTHWISE) {
        out_mask = in_mask;
    }
    const es_adapt_trainer_t *t = wr->t;
    const int trained_pw = t != NULL && i + 2u == n;
    const int trained_fc = t != NULL && i + 1u == n;

    // Weights.
    rec[0] = es_adapt_begin(wr);
    if (l->type == ES_LAYER_DEPTHWISE) {
        for (uint16_t k = 0; k < l->kernel; k++) {
            for (uint16_t c = 0; c < l->in_ch; c++) {
                if (in_mask == NULL || in_mask[c]) {
                    es_adapt_put8(wr, l->weights[(size_t)k * l->in_ch + c]);
                }
            }
        }
    } else {
        for (uint16_t o = 0; o < l->out_ch; o++) {
            if (out_mask != NULL && !out_mask[o]) {
                continue;
            }
            const int32_t *row = trained_pw ? t->w + (size_t)o * t->in : NULL;
            const int32_t amax = trained_pw ? es_adapt_row_scale(row, t->in, t->b[o])
                                 : trained_fc ? es_adapt_row_scale(t->v, t->out, t->fc_b) : 1;
            for (uint16_t k = 0; k < l->kernel; k++) {
                for (uint16_t c = 0; c < l->in_ch; c++) {
                    if (in_mask != NULL && !in_mask[c]) {
                        continue;
                    }
                    const size_t at = ((size_t)o * l->kernel + k) * l->in_ch + c;
                    int32_t w = l->weights[at];
                    if (trained_pw) {
                        w = es_adapt_round_div(row[c] * 127, amax);
                    } else if (trained_fc) {
                        w = es_adapt_round_div(t->v[c] * 127, amax);
                    }
                    es_adapt_put8(wr, w);
                }
            }
        }
    }
    rec[1] = (uint32_t)(wr->pos - rec[0]);

    // Bias: always for CONV / FC (a pruned consumer may need one), as stored for depthwise.
    rec[2] = 0;
    rec[3] = 0;
    if (l->type != ES_LAYER_DEPTHWISE || l->bias != NULL) {
        rec[2] = es_adapt_begin(wr);
        for (uint16_t o = 0; o < l->out_ch; o++) {
            if (out_mask != NULL && !out_mask[o]) {
                continue;
            }
            int64_t b = l->bias != NULL ? l->bias[o] : 0;
            if (trained_pw) {
                b = es_adapt_requant_bias(t->b[o], es_adapt_row_scale(t->w + (size_t)o * t->in,
                    t->in, t->b[o]));
            } else if (trained_fc) {
                b = es_adapt_requant_bias(t->fc_b, es_adapt_row_scale(t->v, t->out, t->fc_b));
            } else if (wr->fix != NULL && in_mask != NULL && l->type != ES_LAYER_DEPTHWISE) {
                // Removed input channels contribute their mean: sum_k w * mean(a - zp).
                int64_t fix_q8 = 0;
                for (uint16_t c = 0; c < l->in_ch; c++) {
                    if (in_mask[c]) {
                        continue;
                    }
                    const int32_t mean = es_adapt_mean_q8(wr->fix, gin, c, 0);
                    for (uint16_t k = 0; k < l->kernel; k++) {
                        fix_q8 += (int64_t)l->weights[((size_t)o * l->kernel + k) * l->in_ch
                                                      + c] * mean;
                    }
                }
                b += es_adapt_rshift_round(fix_q8, 8);
                // A bias at the format's bound (a channel whose weights went to about 0 can
                // carry one) stays there: that channel's output is constant either way.
                b = es_adapt_clamp64(b, ES_MODEL_MAX_BIAS);
            }
            // Untouched biases are as the parsed blob has them; trained ones fit by
            // construction (es_adapt_row_scale). Checked anyway: the parser refuses more.
            if (b > ES_MODEL_MAX_BIAS || b < -ES_MODEL_MAX_BIAS) {
                return "bias beyond +-2^30 in the rewritten model";
            }
            es_adapt_put32(wr, (int32_t)b);
        }
        rec[3] = (uint32_t)(wr->pos - rec[2]);
    }

    // Multiplier and shift.
    for (int which = 0; which < 2; which++) {
        rec[4 + 2 * which] = es_adapt_begin(wr);
        for (uint16_t o = 0; o < l->out_ch; o++) {
            if (out_mask != NULL && !out_mask[o]) {
                continue;
            }
            int32_t mult = l->multiplier[o];
            int32_t shift = l->shift[o];
            if (trained_pw || trained_fc) {
                const int32_t amax = trained_pw
                    ? es_adapt_row_scale(t->w + (size_t)o * t->in, t->in, t->b[o])
                    : es_adapt_row_scale(t->v, t->out, t->fc_b);
                es_adapt_quantize_multiplier(amax, &mult, &shift);
            }
            es_adapt_put32(wr, which == 0 ? mult : shift);
        }
        rec[5 + 2 * which] = (uint32_t)(wr->pos - rec[4 + 2 * which]);
    }
    return NULL;
}

static const char *es_adapt_write(es_adapt_writer_t *wr, size_t *total) {
    const es_model_t *m = wr->m;
    const uint16_t n = m->info.n_layers;
    wr->pos = ES_BLOB_HEADER_BYTES + (size_t)ES_BLOB_LAYER_BYTES * n;
    for (uint16_t i = 0; i < n; i++) {
        const es_model_layer_t *l = &m->layers[i];
        uint32_t rec[8];
        const char *why = es_adapt_write_layer(wr, i, rec);
        if (why != NULL) {
            return why;
        }
        if (wr->out != NULL) {
            const int gin = wr->lay == NULL ? -1 : es_adapt_in_group(wr->lay, i);
            const int gout = wr->lay == NULL ? -1
                : (l->type == ES_LAYER_DEPTHWISE ? gin : wr->lay->out_group[i]);
            uint8_t *r = wr->out + ES_BLOB_HEADER_BYTES + (size_t)ES_BLOB_LAYER_BYTES * i;
            memset(r, 0, ES_BLOB_LAYER_BYTES);
            r[0] = l->type;
            r[1] = l->kernel;
            r[2] = l->stride;
            es_adapt_wr16(r + 4, es_adapt_count(es_adapt_mask(wr, gin), l->in_ch));
            es_adapt_wr16(r + 6, es_adapt_count(es_adapt_mask(wr, gout), l->out_ch));
            es_adapt_wr16(r + 8, (uint32_t)(-l->input_offset));
            es_adapt_wr16(r + 10, (uint32_t)l->output_offset);
            es_adapt_wr16(r + 12, (uint32_t)l->act_min);
            es_adapt_wr16(r + 14, (uint32_t)l->act_max);
            for (int k = 0; k < 8; k++) {
                es_adapt_wr32(r + 16 + 4 * k, rec[k]);
            }
        }
    }
    const uint32_t logistic_off = es_adapt_begin(wr);
    if (wr->out != NULL) {
        memcpy(wr->out + logistic_off, m->logistic, 256);
        uint8_t *h = wr->out;
        memset(h, 0, ES_BLOB_HEADER_BYTES);
        memcpy(h, ES_BLOB_MAGIC, 4);
        es_adapt_wr16(h + 4, m->info.format_version);
        es_adapt_wr16(h + 6, ES_BLOB_HEADER_BYTES);
        es_adapt_wr32(h + 12, logistic_off + 256u);
        es_adapt_wr32(h + 16, ES_SAMPLE_RATE_HZ);
        es_adapt_wr16(h + 20, ES_WINDOW_SAMPLES);
        es_adapt_wr16(h + 22, ES_HOP_SAMPLES);
        es_adapt_wr16(h + 24, ES_MEL_BINS);
        es_adapt_wr16(h + 26, m->info.input_frames);
        es_adapt_wr16(h + 28, m->info.output_stride);
        es_adapt_wr16(h + 30, n);
        h[32] = m->info.cutoff;
        h[33] = m->info.window;
        es_adapt_wr16(h + 34, m->info.refractory);
        es_adapt_wr32(h + 36, ES_BLOB_HEADER_BYTES);
        es_adapt_wr32(h + 40, logistic_off);
        es_adapt_wr16(h + 44, ES_BLOB_LAYER_BYTES);
        h[46] = m->info.input_norm;
        const uint32_t total_bytes = logistic_off + 256u;
        es_adapt_wr32(h + 8, es_crc32(0, h + ES_BLOB_CRC_START,
            total_bytes - ES_BLOB_CRC_START));
    }
    *total = (size_t)logistic_off + 256u;
    return NULL;
}

// Dry run for the size, then (out non-NULL) the real write.
static int es_adapt_emit(es_adapt_writer_t *wr, uint8_t *out, size_t cap, size_t *out_len,
    const char **why) {
    size_t total = 0;
    wr->out = NULL;
    const char *reason = es_adapt_write(wr, &total);
    if (reason == NULL && out != NULL) {
        if (cap < total) {
            reason = "output buffer too small for the new blob";
        } else {
            wr->out = out;
            reason = es_adapt_write(wr, &total);
        }
    }
    if (out_len != NULL) {
        *out_len = total;
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? ES_OK : ES_E_ARG;
}

int es_adapt_trainer_write(const es_adapt_trainer_t *t, uint8_t *out, size_t cap,
    size_t *out_len, const char **why) {
    if (t == NULL) {
        if (why != NULL) {
            *why = "trainer is NULL";
        }
        return ES_E_ARG;
    }
    es_adapt_writer_t wr = {.m = t->m, .t = t};
    return es_adapt_emit(&wr, out, cap, out_len, why);
}

// ---------------------------------------------------------------------------
// Importance, selection, pruning

// Consumer gain of channel c of group g: sum over outputs o, taps k of M_o * |w[o][k][c]|,
// in Q16 (saturated to 2^32 - 1).
static uint32_t es_adapt_consumer_gain(const es_model_t *m, const es_adapt_layout_t *lay,
    int g, uint16_t c) {
    const es_model_layer_t *l = &m->layers[lay->consumer[g]];
    uint64_t gain = 0;
    for (uint16_t o = 0; o < l->out_ch; o++) {
        uint32_t col = 0;
        for (uint16_t k = 0; k < l->kernel; k++) {
            col += (uint32_t)es_adapt_abs32(l->weights[((size_t)o * l->kernel + k) * l->in_ch
                                                       + c]);
        }
        int64_t q = 0;
        if (es_adapt_to_q16(col, l->multiplier[o], l->shift[o], &q)) {
            gain += (uint64_t)q;
        } else {
            gain = 0xFFFFFFFFu;
        }
    }
    return gain > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)gain;
}

// Producer gain of channel c: M_c * sum|w_c| (Q8 output quanta per input quantum).
static uint32_t es_adapt_producer_gain(const es_model_t *m, const es_adapt_layout_t *lay,
    int g, uint16_t c) {
    const es_model_layer_t *l = &m->layers[lay->producer[g]];
    uint32_t row = 0;
    const size_t taps = (size_t)l->kernel * l->in_ch;
    for (size_t j = 0; j < taps; j++) {
        row += (uint32_t)es_adapt_abs32(l->weights[(size_t)c * taps + j]);
    }
    int64_t q = 0;
    if (!es_adapt_to_q16(row, l->multiplier[c], l->shift[c], &q)) {
        return 0xFFFFFFFFu;
    }
    q = es_adapt_rshift_round(q, 8);
    return q > 0xFFFFFFFF ? 0xFFFFFFFFu : (uint32_t)q;
}

int es_adapt_importance(const es_model_t *m, const es_adapt_stats_t *s, int mode,
    uint32_t *scores) {
    es_adapt_layout_t own;
    if (m != NULL) {
        es_adapt_layout(m, &own);
    }
    if (m == NULL || s == NULL || scores == NULL || memcmp(&own, &s->lay, sizeof(own)) != 0
        || (mode != ES_ADAPT_DATA_AWARE && mode != ES_ADAPT_WEIGHT_NORM)
        || (mode == ES_ADAPT_DATA_AWARE && s->windows == 0)) {
        return ES_E_ARG;
    }
    const es_adapt_layout_t *lay = &s->lay;
    for (int g = 0; g < lay->n_groups; g++) {
        for (uint16_t c = 0; c < lay->ch[g]; c++) {
            const uint64_t gain = es_adapt_consumer_gain(m, lay, g, c);
            const uint64_t a = mode == ES_ADAPT_DATA_AWARE
                ? (uint64_t)es_adapt_mean_q8(s, g, c, 1) : es_adapt_producer_gain(m, lay, g, c);
            const uint64_t v = (gain * a) >> 8;  // gain < 2^32, a < 2^31: fits
            scores[lay->off[g] + c] = v > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)v;
        }
    }
    return ES_OK;
}

int es_adapt_select(const es_adapt_stats_t *s, const uint32_t *scores,
    const uint16_t *prune_pm, uint8_t *keep) {
    if (s == NULL || scores == NULL || keep == NULL || prune_pm == NULL) {
        return ES_E_ARG;
    }
    const es_adapt_layout_t *lay = &s->lay;
    for (int g = 0; g < lay->n_groups; g++) {
        if (prune_pm[g] > 1000u) {
            return ES_E_ARG;
        }
    }
    for (int g = 0; g < lay->n_groups; g++) {
        const uint16_t n = lay->ch[g];
        const uint32_t drop = ((uint32_t)n * prune_pm[g] + 500u) / 1000u;
        const uint32_t want = drop >= n ? 1u : n - drop;
        const uint32_t *sc = scores + lay->off[g];
        uint8_t *k = keep + lay->off[g];
        // Channel c is kept when fewer than `want` channels rank above it.
        for (uint16_t c = 0; c < n; c++) {
            uint32_t above = 0;
            for (uint16_t d = 0; d < n; d++) {
                above += sc[d] > sc[c] || (sc[d] == sc[c] && d < c);
            }
            k[c] = above < want;
        }
    }
    return ES_OK;
}

int es_adapt_prune(const es_model_t *m, const es_adapt_stats_t *s, const uint8_t *keep,
    int bias_fix, uint8_t *out, size_t cap, size_t *out_len, const char **why) {
    const char *reason = NULL;
    es_adapt_layout_t lay;
    if (m != NULL) {
        es_adapt_layout(m, &lay);
    }
    if (m == NULL || s == NULL || keep == NULL) {
        reason = "prune: NULL argument";
    } else if (memcmp(&lay, &s->lay, sizeof(lay)) != 0) {
        reason = "prune: statistics of a model with other channel groups";
    } else if (bias_fix && s->windows == 0) {
        reason = "prune: bias correction needs statistics from at least one window";
    } else {
        for (int g = 0; g < s->lay.n_groups && reason == NULL; g++) {
            if (es_adapt_count(keep + s->lay.off[g], s->lay.ch[g]) == 0) {
                reason = "prune: a group would lose all its channels";
            }
        }
    }
    if (reason != NULL) {
        if (why != NULL) {
            *why = reason;
        }
        return ES_E_ARG;
    }
    es_adapt_writer_t wr = {.m = m, .lay = &lay, .keep = keep, .fix = bias_fix ? s : NULL};
    return es_adapt_emit(&wr, out, cap, out_len, why);
}
