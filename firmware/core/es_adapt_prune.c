// Earshot on-device adaptation: channel importance, selection and pruning (API and design
// notes in es_adapt.h, "3. Architectural adaptation").
#include <string.h>

#include "es_adapt_internal.h"

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
