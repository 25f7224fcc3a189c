// Earshot detector: frontend -> VAD gate -> streaming engine -> probability ->
// posterior smoothing, one hop at a time, all state in the caller's buffer.
//
// Gate. Every feature row also goes into a pre-roll ring of the last
// input_frames + output_stride - 1 rows. While the gate is closed the engine
// does not run. When it opens at hop n (hops counted from 0 since init/reset),
// the engine is reset and R rows ending with hop n are replayed, where
//   R = n + 1                                          if n + 1 <= ring capacity,
//   R = input_frames + ((n + 1 - input_frames) mod output_stride)   otherwise,
// so R >= input_frames and R = n + 1 (mod output_stride). The engine's outputs
// then fall on the same hops as in continuous operation and, since an output
// depends only on the input_frames rows ending at its hop (earshot.h), equal
// them bit for bit while the gate stays open. Outputs produced during a replay
// all go through the posterior at hop n. When the gate closes the posterior is
// cleared and the reported probability drops to 0.
//
// Input normalisation. When the model's blob sets input_norm, every row goes through
// es_norm (earshot.h) after the VAD has seen it and before it enters the pre-roll; its
// minima are updated at every hop, gate open or closed, so the model's input does not
// depend on the gate. The VAD always sees the frontend's log-mel.
//
// With vad_enabled = 0 the engine runs on every hop (the first hop after
// init/reset replays one row, which is the same as pushing it); the VAD still
// runs, so ES_FLAG_VAD and vad_open_hops report what the gate would have done.
//
// Memory (each part 4-byte aligned): es_detector_t | frontend | pre-roll
// (capacity * ES_MEL_BINS int8) | engine (es_engine_mem_size).
#include <string.h>

#include "earshot.h"
#include "es_internal.h"

struct es_detector_t {
    const es_model_t *model;
    es_frontend_t *fe;
    es_engine_t *engine;
    int8_t *preroll;         // capacity rows of ES_MEL_BINS, ring
    uint16_t capacity;       // input_frames + output_stride - 1
    uint16_t filled;         // rows in the ring (saturates at capacity)
    uint16_t next;           // slot of the next row
    uint16_t input_frames;
    uint16_t stride;
    uint16_t phase;          // hops since init/reset, mod stride
    uint8_t running;         // the engine ran at the previous hop
    uint8_t prob;            // latest probability, 0 while the engine is off
    uint8_t norm_on;         // the model's input_norm != 0: rows go through es_norm
    uint8_t reserved;
    es_detector_config_t cfg;
    es_detector_stats_t stats;
    es_vad_t vad;
    es_norm_t norm;          // used when the model's input_norm != 0
    es_posterior_t post;
};

typedef struct {
    size_t frontend;  // offsets from the aligned start
    size_t preroll;
    size_t engine;
    size_t total;     // bytes from the aligned start
} es_detector_layout_t;

static int es_detector_layout(const es_model_t *m, es_detector_layout_t *lay) {
    es_model_info_t info;
    es_model_get_info(m, &info);
    if (info.input_frames == 0 || info.output_stride == 0) {
        return ES_E_ARG;
    }
    size_t engine_bytes = es_engine_mem_size(m);
    if (engine_bytes == 0) {
        return ES_E_ARG;
    }
    size_t capacity = (size_t)info.input_frames + info.output_stride - 1u;
    if (capacity > UINT16_MAX) {
        return ES_E_ARG;
    }
    lay->frontend = ES_ALIGN4(sizeof(es_detector_t));
    lay->preroll = lay->frontend + ES_ALIGN4(es_frontend_mem_size());
    lay->engine = lay->preroll + ES_ALIGN4(capacity * ES_MEL_BINS);
    lay->total = lay->engine + ES_ALIGN4(engine_bytes);
    return ES_OK;
}

size_t es_detector_mem_size(const es_model_t *m) {
    es_detector_layout_t lay;
    if (m == NULL || es_detector_layout(m, &lay) != ES_OK) {
        return 0;
    }
    return lay.total + ES_ALIGN_SLACK;
}

es_detector_t *es_detector_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_detector_config_t *cfg) {
    es_detector_layout_t lay;
    if (mem == NULL || m == NULL || es_detector_layout(m, &lay) != ES_OK ||
        mem_len < lay.total + ES_ALIGN_SLACK) {
        return NULL;
    }
    es_model_info_t info;
    es_model_get_info(m, &info);
    es_detector_config_t c;
    if (cfg == NULL) {
        memset(&c, 0, sizeof(c));
        c.cutoff = info.cutoff;
        c.window = info.window;
        c.refractory = info.refractory;
        c.vad_enabled = 1;
    } else {
        c = *cfg;
    }
    uint8_t *base = es_align_ptr(mem);
    es_detector_t *d = (es_detector_t *)base;
    memset(d, 0, sizeof(*d));
    if (es_posterior_setup(&d->post, c.cutoff, c.window, c.refractory) != ES_OK ||
        es_vad_setup(&d->vad, NULL) != ES_OK) {
        return NULL;
    }
    d->model = m;
    d->cfg = c;
    d->norm_on = info.input_norm != 0;
    es_norm_set_mode(&d->norm, info.input_norm);
    d->input_frames = info.input_frames;
    d->stride = info.output_stride;
    d->capacity = (uint16_t)(info.input_frames + info.output_stride - 1u);
    d->fe = es_frontend_init(base + lay.frontend, lay.preroll - lay.frontend);
    d->preroll = (int8_t *)(base + lay.preroll);
    d->engine = es_engine_init(base + lay.engine, lay.total - lay.engine, m);
    if (d->fe == NULL || d->engine == NULL) {
        return NULL;
    }
    es_detector_reset(d);
    return d;
}

void es_detector_reset(es_detector_t *d) {
    if (d == NULL) {
        return;
    }
    es_frontend_reset(d->fe);
    es_engine_reset(d->engine);
    es_vad_reset(&d->vad);
    es_norm_reset(&d->norm);
    es_posterior_clear(&d->post);
    memset(d->preroll, 0, (size_t)d->capacity * ES_MEL_BINS);
    memset(&d->stats, 0, sizeof(d->stats));
    d->filled = 0;
    d->next = 0;
    d->phase = 0;
    d->running = 0;
    d->prob = 0;
}

// Push one row into the engine; on an output update the probability and the
// posterior. Returns the ES_FLAG_* bits this produced.
static unsigned es_detector_push(es_detector_t *d, const int8_t *row) {
    int8_t logit;
    if (!es_engine_push(d->engine, row, &logit)) {
        return 0;
    }
    d->prob = es_model_probability(d->model, logit);
    unsigned flags = ES_FLAG_OUTPUT;
    if (es_posterior_push(&d->post, d->prob)) {
        flags |= ES_FLAG_DETECT;
    }
    return flags;
}

// Replay the pre-roll after an engine reset (see the top of this file).
static unsigned es_detector_replay(es_detector_t *d) {
    uint16_t rows = d->filled;
    if (d->filled == d->capacity) {
        // (hops - input_frames) mod stride, from hops mod stride.
        uint16_t lag = (uint16_t)(d->input_frames % d->stride);
        rows = (uint16_t)(d->input_frames + (d->phase + d->stride - lag) % d->stride);
    }
    es_engine_reset(d->engine);
    unsigned flags = 0;
    uint16_t slot = (uint16_t)((d->next + d->capacity - rows) % d->capacity);
    for (uint16_t i = 0; i < rows; i++) {
        flags |= es_detector_push(d, d->preroll + (size_t)slot * ES_MEL_BINS);
        slot = (uint16_t)(slot + 1u == d->capacity ? 0u : slot + 1u);
    }
    return flags;
}

static unsigned es_detector_hop(es_detector_t *d, const int16_t *samples) {
    int8_t *row = d->preroll + (size_t)d->next * ES_MEL_BINS;
    es_frontend_run(d->fe, samples, 1, row);
    d->next = (uint16_t)(d->next + 1u == d->capacity ? 0u : d->next + 1u);
    if (d->filled < d->capacity) {
        d->filled++;
    }
    d->phase = (uint16_t)(d->phase + 1u == d->stride ? 0u : d->phase + 1u);
    d->stats.hops++;

    unsigned flags = 0;
    if (es_vad_update(&d->vad, row)) {
        flags |= ES_FLAG_VAD;
        d->stats.vad_open_hops++;
    }
    if (d->norm_on) {
        es_norm_update(&d->norm, row, row);
    }
    int run = !d->cfg.vad_enabled || (flags & ES_FLAG_VAD);
    if (run) {
        flags |= ES_FLAG_RAN;
        flags |= d->running ? es_detector_push(d, row) : es_detector_replay(d);
        d->running = 1;
        d->stats.model_hops++;
    } else if (d->running) {
        es_posterior_clear(&d->post);
        d->running = 0;
        d->prob = 0;
    }
    if (flags & ES_FLAG_DETECT) {
        d->stats.detections++;
    }
    return flags;
}

size_t es_detector_run(es_detector_t *d, const int16_t *samples, size_t n_hops, uint8_t *probs,
    uint8_t *flags) {
    if (d == NULL || samples == NULL) {
        return 0;
    }
    size_t detections = 0;
    for (size_t h = 0; h < n_hops; h++) {
        unsigned f = es_detector_hop(d, samples + h * ES_HOP_SAMPLES);
        detections += (f & ES_FLAG_DETECT) ? 1u : 0u;
        if (probs != NULL) {
            probs[h] = d->prob;
        }
        if (flags != NULL) {
            flags[h] = (uint8_t)f;
        }
    }
    return detections;
}

void es_detector_get_stats(const es_detector_t *d, es_detector_stats_t *stats) {
    if (d == NULL || stats == NULL) {
        return;
    }
    *stats = d->stats;
}
