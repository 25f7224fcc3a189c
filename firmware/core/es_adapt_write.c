// Earshot on-device adaptation: the blob writer, which lays out an adapted model (the
// trainer's layers requantized) or a pruned one (channels removed) as a new blob in the
// format of es_model.h (API and design notes in es_adapt.h).
#include <string.h>

#include "es_adapt_internal.h"

// round(2^37 / 127): 1 / 127 in Q37, for the multiplier of max|W| / 127.
#define ES_ADAPT_INV127_Q37 (1082196484u)

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

static const uint8_t *es_adapt_mask(const es_adapt_writer_t *wr, int g) {
    return wr->lay == NULL || g < 0 ? NULL : wr->keep + wr->lay->off[g];
}

uint16_t es_adapt_count(const uint8_t *mask, uint16_t n) {
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
int es_adapt_emit(es_adapt_writer_t *wr, uint8_t *out, size_t cap, size_t *out_len,
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
