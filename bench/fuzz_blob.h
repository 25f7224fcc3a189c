// Shared by the libFuzzer harnesses bench/fuzz_model.c and bench/fuzz_adapt.c (built by
// bench/fuzz.py with clang -fsanitize=fuzzer,address,undefined): the input as a model blob,
// buffers whose end is the end of a heap allocation (so ASan sees any byte written or read
// past the size the core asked for), a speech-like test signal and the trap that marks a
// broken promise of the API as a finding.
//
// Input layout: a model blob (format in firmware/core/es_model.h), optionally followed by a
// trailer (the bytes after the blob's total_bytes, which the parser ignores) that the
// harnesses use for their settings and audio. A mutated blob almost never keeps a valid
// CRC-32, so the harness parses the input as it is and, when that fails, once more with the
// CRC recomputed: the first parse covers the CRC check, the second everything after it.
#ifndef FUZZ_BLOB_H
#define FUZZ_BLOB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earshot.h"

// Largest buffer the harness hands to the core (bytes): a fuzzed model may ask for more
// (the core computes the size; it is not a finding), and is then not run.
#define FUZZ_MAX_MEM (4u << 20)
// Hops of audio run through a detector per input (10 ms each).
#define FUZZ_MAX_HOPS (400u)

// A broken promise of the public API: abort with the reason (libFuzzer saves the input).
#define FUZZ_CHECK(cond, what)                                   \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FUZZ_CHECK failed: %s\n", (what));  \
            abort();                                             \
        }                                                        \
    } while (0)

// n bytes for the core at an odd address, ending exactly at the end of the allocation.
// Returns the pointer to hand over; *base gets the one to free. NULL if n is 0 or too big.
static inline void *fuzz_alloc(size_t n, void **base) {
    *base = NULL;
    if (n == 0 || n > FUZZ_MAX_MEM) {
        return NULL;
    }
    uint8_t *p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }
    memset(p, 0xA5, n + 1);
    *base = p;
    return p + 1;
}

static inline uint32_t fuzz_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

// The blob's total_bytes (header offset 12), 0 if the input is shorter than a header.
static inline uint32_t fuzz_blob_total(const uint8_t *data, size_t size) {
    return size >= 48 ? fuzz_rd32(data + 12) : 0u;
}

// Parse data[0, size) as a blob copied to a 4-byte aligned allocation of exactly size
// bytes (*copy, to free; the model points into it). Parses the input as it is, then, if
// that fails and total_bytes lies inside the input, with the CRC-32 recomputed. Returns the
// model or NULL; *model_base gets the model buffer to free.
static inline es_model_t *fuzz_parse(const uint8_t *data, size_t size, uint8_t **copy,
    void **model_base) {
    *copy = NULL;
    *model_base = NULL;
    if (size == 0) {
        return NULL;
    }
    *copy = malloc(size);  // malloc is at least 4-byte aligned
    if (*copy == NULL) {
        return NULL;
    }
    memcpy(*copy, data, size);
    size_t mem_len = es_model_mem_size();
    void *mem = fuzz_alloc(mem_len, model_base);
    const char *why = NULL;
    es_model_t *m = es_model_parse(mem, mem_len, *copy, size, &why);
    FUZZ_CHECK((m == NULL) == (why != NULL), "es_model_parse: a reason exactly on failure");
    uint32_t total = fuzz_blob_total(*copy, size);
    if (m == NULL && total >= 12u && total <= size) {
        uint32_t crc = es_crc32(0, *copy + 12, total - 12u);
        for (int i = 0; i < 4; i++) {
            (*copy)[8 + i] = (uint8_t)(crc >> (8 * i));
        }
        m = es_model_parse(mem, mem_len, *copy, size, &why);
        FUZZ_CHECK((m == NULL) == (why != NULL), "es_model_parse: a reason exactly on failure");
    }
    return m;
}

// What a parsed model promises (earshot.h, es_model.h).
static inline void fuzz_check_info(const es_model_t *m, es_model_info_t *info) {
    es_model_get_info(m, info);
    FUZZ_CHECK(info->input_bins == ES_MEL_BINS, "info: input_bins");
    FUZZ_CHECK(info->n_layers >= 1 && info->n_layers <= 24, "info: n_layers");
    FUZZ_CHECK(info->input_frames >= 1 && info->output_stride >= 1, "info: frames, stride");
    FUZZ_CHECK(info->cutoff >= 1 && info->window >= 1 && info->window <= ES_MAX_WINDOW,
        "info: posterior defaults");
    FUZZ_CHECK(info->input_norm <= ES_NORM_MINSTAT_GATE, "info: input_norm");
    FUZZ_CHECK(info->engine_bytes == es_engine_mem_size(m), "info: engine_bytes");
}

// A speech-like int16 test signal: seeded LCG noise under an envelope of 100 ms steps that
// keeps the VAD gate closed long enough for the pre-roll ring to fill (the replay from a full
// ring), opens it, lets it close again (hangover: 50 hops) and reopens it; n_hops *
// ES_HOP_SAMPLES samples. The trailer's bytes, if any, are added in cyclically so the fuzzer
// can shape the audio too.
static inline void fuzz_signal(int16_t *x, size_t n_hops, const uint8_t *trailer,
    size_t n_trailer) {
    // Gain per 100 ms (1/8 of full scale per step): 1.3 s quiet, 0.5 s loud, 0.8 s quiet,
    // 0.4 s loud, 1 s quiet.
    static const uint8_t env[40] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 6, 8, 4, 7, 0, 0,
                                    0, 0, 0, 0, 0, 0, 5, 8, 3, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t state = 12345u;
    size_t n = n_hops * ES_HOP_SAMPLES;
    for (size_t i = 0; i < n; i++) {
        state = 1664525u * state + 1013904223u;
        int32_t noise = (int32_t)(state >> 16) - 32768;
        int32_t gain = env[(i / 1600u) % 40u];
        int32_t v = gain > 0 ? noise * gain / 8 : noise / 256;
        if (n_trailer > 0) {
            v += (int32_t)trailer[i % n_trailer] * 64 - 8192;
        }
        x[i] = (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
    }
}

#endif // FUZZ_BLOB_H
