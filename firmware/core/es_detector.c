// Earshot detector: first-stage gate -> frontend -> VAD -> input normalisation ->
// streaming engine -> probability -> posterior smoothing, one hop at a time, all state in the
// caller's buffer.
//
// First stage (es_gate_update, rule in es_vad.c; what it saves in earshot.h). With
// gate_enabled, every hop first goes through it. Open: the pending hops of the raw pre-roll
// (below) are finalised live, in order, then this hop. Closed: if the raw pre-roll already
// holds ES_GATE_PREROLL_HOPS pending hops, the oldest is finalised closed; then this hop's
// samples join the pre-roll. Finalising a hop live = the frontend computes its row (its
// history is always that of the hop before the oldest pending one); closed = the first
// closed hop after a live one and every ES_GATE_DECIMATE-th after it, the frontend computes
// the row and keeps a copy (last); otherwise the history only moves on (es_frontend_hop
// without output); the row is last less es_detector_min_bias. Either way the row then goes
// through the VAD and the normalisation and into the model's pre-roll (rows are finalised in
// hop order, so stats.rows counts them); only a live row may run the engine.
// Handshake: while the first stage only holds (its hop is not above the onset) and the VAD is
// closed with no speech-like hop in a row, the model is off and nothing needs a live row, so
// the first stage closes at once instead of waiting out its hangover (not in the first
// ES_GATE_HANGOVER hops after init/reset, which start open on purpose: es_vad.c). Without
// gate_enabled every hop is finalised live at once: the detector of ES_VERSION_MINOR 3.
//
// VAD gate. Every finalised row also goes into a pre-roll ring of the last
// input_frames + output_stride - 1 rows. The engine runs on a live row when the VAD is open
// (or vad_enabled is 0). When it starts at row n (rows counted from 0 since init/reset),
// the engine is reset and R rows ending with row n are replayed, where
//   R = n + 1                                          if n + 1 <= ring capacity,
//   R = input_frames + ((n + 1 - input_frames) mod output_stride)   otherwise,
// so R >= input_frames and R = n + 1 (mod output_stride). The engine's outputs
// then fall on the same hops as in continuous operation and, since an output
// depends only on the input_frames rows ending at its hop (earshot.h), equal
// them bit for bit while the gate stays open. Outputs produced during a replay
// all go through the posterior at the current hop. When the engine stops (VAD closed, or
// a row finalised closed) the posterior is cleared and the reported probability drops to 0.
// With the first stage in use, rows finalised closed are exact only every
// ES_GATE_DECIMATE-th time: an output whose window reaches back into them differs from the
// ungated one (bench/pipeline.py and tests/test_gate.py measure by how much).
//
// Input normalisation. When the model's blob sets input_norm, every row goes through
// es_norm (earshot.h) after the VAD has seen it and before it enters the pre-roll; its
// minima are updated at every row, gate open or closed, so the model's input does not
// depend on the VAD. The VAD always sees the frontend's log-mel.
//
// With vad_enabled = 0 the engine runs on every live row (the first row after
// init/reset replays one row, which is the same as pushing it); the VAD still
// runs, so ES_FLAG_VAD and vad_open_hops report what the gate would have done.
//
// Memory (each part 4-byte aligned): es_detector_t | frontend | pre-roll
// (capacity * ES_MEL_BINS int8) | raw pre-roll (ES_GATE_PREROLL_HOPS * ES_HOP_SAMPLES int16)
// | engine (es_engine_mem_size).
#include <string.h>

#include "earshot.h"
#include "es_internal.h"
#include "es_model.h"

// Steps (0.376 dB) subtracted, per bin, from the row a closed hop repeats: the normalisation's
// minimum statistics (and the VAD's floors, which also follow the lowest rows) then see, on
// average, the minimum they would have found over all hops rather than over every
// ES_GATE_DECIMATE-th one (the minimum of fewer draws lies higher). Measured through this
// frontend in stationary white and pink noise at three levels each (the mean of the
// minimum-statistics floor from decimated rows less the floor from every row; colours and
// levels differ by less than a step): tests/test_gate.py re-measures it.
static const uint8_t es_detector_min_bias[ES_MEL_BINS] = {
    10, 11, 12, 10, 10, 10, 9, 8, 8, 7, 8, 8, 7, 7, 6, 7, 5, 6, 6, 6,
    4, 4, 5, 5, 4, 5, 5, 4, 5, 5, 4, 4, 4, 4, 4, 3, 3, 3, 4, 3,
};

struct es_detector_t {
    const es_model_t *model;
    es_frontend_t *fe;
    es_engine_t *engine;
    int8_t *preroll;         // capacity rows of ES_MEL_BINS, ring
    int16_t *raw;            // ES_GATE_PREROLL_HOPS hops of samples: pending hops, oldest first
    // 32-bit counters: no zero-extensions on 32-bit cores (less hot-path code).
    uint32_t capacity;       // input_frames + output_stride - 1
    uint32_t filled;         // rows in the ring (saturates at capacity)
    uint32_t next;           // slot of the next row
    uint32_t input_frames;
    uint32_t stride;
    uint32_t lag;            // input_frames mod stride
    uint32_t phase;          // rows since init/reset, mod stride
    uint8_t running;         // the engine ran at the previous hop
    uint8_t prob;            // latest probability, 0 while the engine is off
    uint8_t norm_on;         // the model's input_norm != 0: rows go through es_norm
    uint8_t pending;         // hops in the raw ring not finalised yet
    uint8_t decim;           // closed rows left before the frontend runs again (0 after a
                             // live row: the next closed row is computed)
    uint8_t reserved[3];
    int8_t last[ES_MEL_BINS];  // the last row the frontend computed for a closed hop
    es_detector_config_t cfg;
    es_detector_stats_t stats;
    es_vad_t vad;
    es_norm_t norm;          // used when the model's input_norm != 0
    es_posterior_t post;
    es_gate_t gate;
};

typedef struct {
    size_t frontend;  // offsets from the aligned start
    size_t preroll;
    size_t raw;
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
    lay->raw = lay->preroll + ES_ALIGN4(capacity * ES_MEL_BINS);
    lay->engine = lay->raw + ES_GATE_PREROLL_HOPS * ES_HOP_SAMPLES * sizeof(int16_t);
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
        c.gate_enabled = 1;
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
    d->capacity = info.input_frames + info.output_stride - 1u;
    d->lag = info.input_frames % info.output_stride;
    d->fe = es_frontend_init(base + lay.frontend, lay.preroll - lay.frontend);
    d->preroll = (int8_t *)(base + lay.preroll);
    d->raw = (int16_t *)(base + lay.raw);
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
    es_gate_reset(&d->gate);
    memset(d->preroll, 0, (size_t)d->capacity * ES_MEL_BINS);
    memset(&d->stats, 0, sizeof(d->stats));
    d->filled = 0;
    d->next = 0;
    d->phase = 0;
    d->running = 0;
    d->prob = 0;
    d->pending = 0;
    d->decim = 0;
}

// Push one row into the engine; on an output update the probability and the
// posterior. Returns the ES_FLAG_* bits this produced.
static unsigned es_detector_push(es_detector_t *d, const int8_t *row) {
    int8_t logit;
    if (!es_engine_push(d->engine, row, &logit)) {
        return 0;
    }
    d->prob = d->model->logistic[(int32_t)logit + 128];  // es_model_probability, inline
    unsigned flags = ES_FLAG_OUTPUT;
    if (es_posterior_push(&d->post, d->prob)) {
        flags |= ES_FLAG_DETECT;
    }
    return flags;
}

// Replay the pre-roll after an engine reset (see the top of this file).
static unsigned es_detector_replay(es_detector_t *d) {
    uint32_t rows = d->filled;
    if (d->filled == d->capacity) {
        // (rows - input_frames) mod stride, from rows mod stride.
        uint32_t r = d->phase + d->stride - d->lag;  // < 2 * stride
        rows = d->input_frames + (r >= d->stride ? r - d->stride : r);
    }
    es_engine_reset(d->engine);
    unsigned flags = 0;
    uint32_t slot = d->next + d->capacity - rows;  // < 2 * capacity
    slot -= slot >= d->capacity ? d->capacity : 0u;
    for (uint32_t i = 0; i < rows; i++) {
        flags |= es_detector_push(d, d->preroll + (size_t)slot * ES_MEL_BINS);
        slot = slot + 1u == d->capacity ? 0u : slot + 1u;
    }
    return flags;
}

// Finalise the row just written at slot `next`: VAD, normalisation, pre-roll; a live row
// may run the engine, a closed one stops it. Returns the ES_FLAG_* bits this produced.
static unsigned es_detector_row(es_detector_t *d, int live) {
    int8_t *row = d->preroll + (size_t)d->next * ES_MEL_BINS;
    d->next = d->next + 1u == d->capacity ? 0u : d->next + 1u;
    if (d->filled < d->capacity) {
        d->filled++;
    }
    d->phase = d->phase + 1u == d->stride ? 0u : d->phase + 1u;
    d->stats.rows++;

    unsigned flags = 0;
    if (es_vad_update(&d->vad, row)) {
        flags |= ES_FLAG_VAD;
        d->stats.vad_open_hops++;
    }
    if (d->norm_on) {
        es_norm_update(&d->norm, row, row);
    }
    if (live && (!d->cfg.vad_enabled || (flags & ES_FLAG_VAD))) {
        flags |= ES_FLAG_RAN;
        flags |= d->running ? es_detector_push(d, row) : es_detector_replay(d);
        d->running = 1;
        d->stats.model_hops++;
    } else if (d->running) {
        es_posterior_clear(&d->post);
        d->running = 0;
        d->prob = 0;
    }
    return flags;
}

// Finalise one hop of samples: live (the frontend computes its row) or closed (see the top
// of this file).
static unsigned es_detector_finish(es_detector_t *d, const int16_t *samples, int live) {
    int8_t *row = d->preroll + (size_t)d->next * ES_MEL_BINS;
    if (live || d->decim == 0) {
        // A live row; or the first closed row after a live one, or every
        // ES_GATE_DECIMATE-th closed row: computed (and kept in last if closed).
        es_frontend_hop(d->fe, samples, live ? row : d->last);
        d->stats.frontend_hops++;
        d->decim = live ? 0u : ES_GATE_DECIMATE;
    } else {
        es_frontend_hop(d->fe, samples, NULL);
    }
    if (!live) {
        d->decim--;
        for (unsigned b = 0; b < ES_MEL_BINS; b++) {
            const int32_t v = d->last[b] - es_detector_min_bias[b];
            row[b] = (int8_t)(v > -128 ? v : -128);
        }
    }
    return es_detector_row(d, live);
}

static unsigned es_detector_hop(es_detector_t *d, const int16_t *samples) {
    d->stats.hops++;
    unsigned flags = 0;
    if (d->cfg.gate_enabled) {
        int open = es_gate_update(&d->gate, samples);
        // Handshake: while the first stage only holds (this hop is not above its onset) and
        // the VAD is closed with no speech-like hop in a row, no live row is needed (the
        // model is off): the first stage closes (not during its start after reset).
        if (open && d->gate.run == 0 && !d->vad.s.open && d->vad.s.run == 0 &&
            d->stats.hops > ES_GATE_HANGOVER) {
            d->gate.open = 0;
            d->gate.hold = 0;
            open = 0;
        }
        if (!open) {
            // The raw pre-roll is kept oldest first (a memmove of ES_GATE_PREROLL_HOPS - 1
            // hops when it is full: simpler code than a ring, a few hundred instructions).
            if (d->pending == ES_GATE_PREROLL_HOPS) {
                flags = es_detector_finish(d, d->raw, 0);
                d->pending--;
                memmove(d->raw, d->raw + ES_HOP_SAMPLES,
                    (size_t)d->pending * ES_HOP_SAMPLES * sizeof(int16_t));
            }
            memcpy(d->raw + (size_t)d->pending * ES_HOP_SAMPLES, samples,
                ES_HOP_SAMPLES * sizeof(int16_t));
            d->pending++;
            return flags;
        }
        flags = ES_FLAG_GATE;
        d->stats.gate_open_hops++;
        for (unsigned i = 0; i < d->pending; i++) {  // catch up, oldest first
            flags |= es_detector_finish(d, d->raw + i * ES_HOP_SAMPLES, 1);
        }
        d->pending = 0;
    }
    return flags | es_detector_finish(d, samples, 1);
}

size_t es_detector_run(es_detector_t *d, const int16_t *samples, size_t n_hops, uint8_t *probs,
    uint8_t *flags) {
    if (d == NULL || samples == NULL) {
        return 0;
    }
    size_t detections = 0;
    for (size_t h = 0; h < n_hops; h++) {
        unsigned f = es_detector_hop(d, samples + h * ES_HOP_SAMPLES);
        if (f & ES_FLAG_DETECT) {
            d->stats.detections++;
            detections++;
        }
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

size_t es_detector_rows(const es_detector_t *d, uint32_t first, size_t n, int8_t *out) {
    if (d == NULL || out == NULL || n > d->filled || first > d->stats.rows - n ||
        first < d->stats.rows - d->filled) {
        return 0;
    }
    // Row r (r < stats.rows) sits `stats.rows - r` slots before `next`.
    size_t slot = (d->next + d->capacity - (d->stats.rows - first) % d->capacity) % d->capacity;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + i * ES_MEL_BINS, d->preroll + slot * ES_MEL_BINS, ES_MEL_BINS);
        slot = slot + 1u == d->capacity ? 0u : slot + 1u;
    }
    return n;
}
