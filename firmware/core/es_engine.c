// Earshot streaming engine: runs a parsed model one feature row (hop) at a time.
//
// Each layer keeps a ring of its last `kernel` input rows, stored twice (slots i and
// i + kernel) so the window of the last `kernel` rows is always contiguous and the
// kernels read it in place, without copying. A layer runs when `wait` (rows still needed
// before its next output) reaches 0: first after `kernel` rows, then every `stride` rows.
// Its output row goes straight into the next layer's ring; the last layer's output is the
// logit. Because every layer counts rows from the first hop after reset, the output after
// hop n (n = input_frames - 1 + j * output_stride, hops counted from 0) is computed from
// windows that all end at hop n: it equals the non-streaming network on hops
// n - input_frames + 1 .. n, bit for bit (tests/test_parity_tflm.py).
#include <string.h>

#include "es_internal.h"
#include "es_model.h"
#include "es_nn.h"

typedef struct {
    int8_t *ring;   // 2 * kernel rows of in_ch
    uint16_t pos;   // slot of the next row, 0..kernel-1
    uint16_t wait;  // rows to receive before the next run
} es_engine_layer_t;

struct es_engine_t {
    const es_model_t *m;
    int8_t *out;  // the last layer's output row (out_ch == 1)
    size_t ring_bytes;  // all rings, contiguous after the layer states
    es_engine_layer_t layers[ES_MODEL_MAX_LAYERS];
};

static size_t es_engine_ring_bytes(const es_model_t *m) {
    size_t bytes = 0;
    for (uint16_t i = 0; i < m->info.n_layers; i++) {
        bytes += ES_ALIGN4(2u * m->layers[i].kernel * m->layers[i].in_ch);
    }
    return bytes;
}

size_t es_engine_mem_size(const es_model_t *m) {
    if (m == NULL) {
        return 0;
    }
    return ES_ALIGN_SLACK + ES_ALIGN4(sizeof(es_engine_t)) + es_engine_ring_bytes(m)
           + ES_ALIGN4(m->layers[m->info.n_layers - 1].out_ch);
}

void es_engine_reset(es_engine_t *e) {
    if (e == NULL) {
        return;
    }
    memset(e->layers[0].ring, 0, e->ring_bytes);
    for (uint16_t i = 0; i < e->m->info.n_layers; i++) {
        e->layers[i].pos = 0;
        e->layers[i].wait = e->m->layers[i].kernel;
    }
}

es_engine_t *es_engine_init(void *mem, size_t mem_len, const es_model_t *m) {
    if (mem == NULL || m == NULL || mem_len < es_engine_mem_size(m)) {
        return NULL;
    }
    es_engine_t *e = es_align_ptr(mem);  // it holds pointers: ES_HANDLE_ALIGN
    memset(e, 0, sizeof(*e));
    e->m = m;
    e->ring_bytes = es_engine_ring_bytes(m);
    int8_t *p = (int8_t *)e + ES_ALIGN4(sizeof(es_engine_t));
    for (uint16_t i = 0; i < m->info.n_layers; i++) {
        e->layers[i].ring = p;
        p += ES_ALIGN4(2u * m->layers[i].kernel * m->layers[i].in_ch);
    }
    e->out = p;
    es_engine_reset(e);
    return e;
}

int es_engine_push(es_engine_t *e, const int8_t *features, int8_t *logit) {
    if (e == NULL || features == NULL) {
        return 0;
    }
    const uint16_t n = e->m->info.n_layers;
    es_engine_layer_t *s = e->layers;
    memcpy(s->ring + (size_t)s->pos * ES_MEL_BINS, features, ES_MEL_BINS);
    for (uint16_t i = 0; i < n; i++, s++) {
        // Layer i received a row in its slot `pos`: mirror it, advance, and run the layer
        // once `wait` rows have come in.
        const es_model_layer_t *l = &e->m->layers[i];
        const size_t row = l->in_ch;
        int8_t *slot = s->ring + (size_t)s->pos * row;
        memcpy(slot + (size_t)l->kernel * row, slot, row);
        s->pos = (uint16_t)(s->pos + 1u == l->kernel ? 0u : s->pos + 1u);
        if (--s->wait != 0) {
            return 0;
        }
        s->wait = l->stride;
        // pos is now the slot of the oldest row: the window of the last `kernel` rows
        // starts there. The output row goes into the next layer's slot (or e->out).
        // (in_len, kernel and stride go to es_nn_rows as arguments: one output row.)
        const es_nn_params_t p = {
            .in_ch = l->in_ch,
            .out_ch = l->out_ch,
            .input_offset = l->input_offset,
            .output_offset = l->output_offset,
            .act_min = l->act_min,
            .act_max = l->act_max,
            .weight_bits = l->weight_bits,
        };
        const es_nn_quant_t q = {.multiplier = l->multiplier, .shift = l->shift};
        int8_t *out = i + 1u < n ? s[1].ring + (size_t)s[1].pos * l->out_ch : e->out;
        // A fully connected layer is a kernel-1 convolution over its one input row.
        es_nn_rows(&p, &q, l->kernel, l->kernel, 1, l->type == ES_LAYER_DEPTHWISE,
            s->ring + (size_t)s->pos * row, l->weights, l->bias, out);
    }
    if (logit != NULL) {
        *logit = e->out[0];
    }
    return 1;
}
