// libFuzzer harness (bench/fuzz.py target c_model): the model blob parser and everything a
// parsed model drives. Public API (earshot.h) only.
//
// Per input (fuzz_blob.h: the blob, then an optional trailer):
// - es_model_parse (as is, then with the CRC-32 fixed), es_model_get_info and its promises;
// - es_model_probability for all 256 logits;
// - an engine fed FUZZ_MAX_HOPS feature rows (a pattern from the trailer): at most one
//   output per hop;
// - a detector (defaults from the blob, VAD and first stage on) and one with a configuration
//   taken from the trailer's first bytes (cutoff, window, refractory, VAD and first stage
//   on/off; es_detector_init may refuse it), each run over a speech-like signal in two calls:
//   the stats add up, rows trail hops by at most ES_GATE_PREROLL_HOPS, es_detector_rows gives
//   the kept rows and refuses the others.
// Buffers end at the end of their allocation, so any access past the size the core asked
// for is caught by ASan; signed overflow and bad shifts by UBSan (no recovery).
#include "fuzz_blob.h"

static void fuzz_engine(const es_model_t *m, const uint8_t *trailer, size_t n_trailer) {
    void *base;
    size_t len = es_engine_mem_size(m);
    void *mem = fuzz_alloc(len, &base);
    if (mem == NULL) {
        return;
    }
    FUZZ_CHECK(es_engine_init(mem, len - 1u, m) == NULL,
        "es_engine_init accepted fewer bytes than es_engine_mem_size()");
    es_engine_t *e = es_engine_init(mem, len, m);
    FUZZ_CHECK(e != NULL, "es_engine_init refused es_engine_mem_size() bytes");
    int8_t row[ES_MEL_BINS];
    for (size_t h = 0; h < FUZZ_MAX_HOPS; h++) {
        for (size_t b = 0; b < ES_MEL_BINS; b++) {
            size_t k = h * ES_MEL_BINS + b;
            row[b] = (int8_t)(n_trailer > 0 ? trailer[k % n_trailer] : (k * 37u) & 0xFFu);
        }
        int8_t logit = 0;
        int out = es_engine_push(e, row, &logit);
        FUZZ_CHECK(out == 0 || out == 1, "es_engine_push returns 0 or 1");
    }
    es_engine_reset(e);
    free(base);
}

static void fuzz_detector(const es_model_t *m, const es_detector_config_t *cfg,
    const int16_t *x) {
    void *base;
    size_t len = es_detector_mem_size(m);
    void *mem = fuzz_alloc(len, &base);
    if (mem == NULL) {
        return;
    }
    es_detector_t *d = es_detector_init(mem, len, m, cfg);
    FUZZ_CHECK(d != NULL || cfg != NULL, "es_detector_init refused a parsed model's defaults");
    if (d != NULL) {
        static uint8_t probs[FUZZ_MAX_HOPS], flags[FUZZ_MAX_HOPS];
        size_t half = FUZZ_MAX_HOPS / 2u;
        size_t det = es_detector_run(d, x, half, probs, flags);
        det += es_detector_run(d, x + half * ES_HOP_SAMPLES, FUZZ_MAX_HOPS - half,
            probs + half, flags + half);
        es_detector_stats_t st;
        es_detector_get_stats(d, &st);
        FUZZ_CHECK(st.hops == FUZZ_MAX_HOPS && st.detections == det, "detector stats");
        FUZZ_CHECK(st.model_hops <= st.hops && st.vad_open_hops <= st.hops, "detector hops");
        FUZZ_CHECK(st.rows <= st.hops && st.hops - st.rows <= ES_GATE_PREROLL_HOPS &&
            st.gate_open_hops <= st.hops && st.frontend_hops <= st.rows, "detector rows");
        static int8_t rows[FUZZ_MAX_HOPS * ES_MEL_BINS];
        FUZZ_CHECK(es_detector_rows(d, st.rows - 1u, 1, rows) == 1, "the last row is kept");
        FUZZ_CHECK(es_detector_rows(d, st.rows, 1, rows) == 0, "a row not finalised yet");
        FUZZ_CHECK(es_detector_rows(d, 0, st.rows, rows) == 0, "more rows than are kept");
        size_t kept = 0;
        while (kept < st.rows && es_detector_rows(d, st.rows - kept - 1u, kept + 1u, rows)) {
            kept++;
        }
        FUZZ_CHECK(kept > 0 && kept < st.rows, "the kept rows: the last ones, not all");
        size_t n_detect = 0;
        for (size_t h = 0; h < FUZZ_MAX_HOPS; h++) {
            n_detect += (flags[h] & ES_FLAG_DETECT) ? 1u : 0u;
            FUZZ_CHECK(!(flags[h] & ES_FLAG_DETECT) || (flags[h] & ES_FLAG_OUTPUT),
                "a detection without a model output");
        }
        FUZZ_CHECK(n_detect == det, "detections counted twice or missed");
        es_detector_reset(d);
    }
    free(base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy;
    void *model_base;
    es_model_t *m = fuzz_parse(data, size, &copy, &model_base);
    if (m != NULL) {
        es_model_info_t info;
        fuzz_check_info(m, &info);
        for (int q = -128; q < 128; q++) {
            (void)es_model_probability(m, (int8_t)q);
        }
        uint32_t total = fuzz_blob_total(copy, size);
        const uint8_t *trailer = copy + total;
        size_t n_trailer = size - total;
        fuzz_engine(m, trailer, n_trailer);
        static int16_t x[FUZZ_MAX_HOPS * ES_HOP_SAMPLES];
        fuzz_signal(x, FUZZ_MAX_HOPS, trailer, n_trailer);
        fuzz_detector(m, NULL, x);
        if (n_trailer >= 5) {
            es_detector_config_t cfg;
            memset(&cfg, 0, sizeof(cfg));
            cfg.cutoff = trailer[0];
            cfg.window = trailer[1];
            cfg.refractory = (uint16_t)(trailer[2] | (trailer[3] << 8));
            cfg.vad_enabled = trailer[4] & 1u;
            cfg.gate_enabled = (trailer[4] >> 1) & 1u;
            fuzz_detector(m, &cfg, x);
        }
    }
    free(model_base);
    free(copy);
    return 0;
}
