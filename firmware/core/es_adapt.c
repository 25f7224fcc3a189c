// Earshot on-device adaptation: channel groups, activation statistics and the non-streaming
// forward pass (API and design notes in es_adapt.h; the other parts in es_adapt_*.c, listed
// in es_adapt_internal.h).
#include <string.h>

#include "es_adapt_internal.h"
#include "es_nn.h"

// Statistics sums are halved (with the row count) once one reaches this, so that
// sum * 256 fits int32 when the mean is taken.
#define ES_ADAPT_SUM_LIMIT (1u << 22)

// ---------------------------------------------------------------------------
// Channel groups

// Output rows of layer i when the network runs on one window of input_frames rows.
static size_t es_adapt_out_len(const es_model_t *m, uint16_t i) {
    size_t len = m->info.input_frames;
    for (uint16_t j = 0; j <= i; j++) {
        len = es_nn_out_len(len, m->layers[j].kernel, m->layers[j].stride);
    }
    return len;
}

void es_adapt_layout(const es_model_t *m, es_adapt_layout_t *lay) {
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
        for (uint16_t i = 0; i < n && reason == NULL; i++) {
            if (m->layers[i].weight_bits != 8u) {
                // Its trainer and blob writer read and write int8 weights.
                reason = "model cannot be adapted: int4 weights (re-quantize with --bits 8)";
            }
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

int32_t es_adapt_mean_q8(const es_adapt_stats_t *s, int g, uint16_t c, int absolute) {
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
            .weight_bits = l->weight_bits,
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
