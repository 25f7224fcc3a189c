// Earshot's per-hop step, timed from C (no Python call overhead), for bench/core.py and the
// valgrind tests (tests/test_sanitizers.py).
//
// Usage: core_step MODE BLOB INPUT HOPS
//   MODE engine:   INPUT holds int8 feature rows (ES_MEL_BINS bytes each); every hop is one
//                  es_engine_push (the model step, as TFLM's Invoke is the model step).
//   MODE detector: INPUT holds int16 PCM; every hop is one es_detector_run of
//                  ES_HOP_SAMPLES samples with the VAD and the first stage off (frontend,
//                  engine, posterior on every hop: the worst case).
//   MODE vad:      as detector, the VAD on, the first stage off (the detector of core 0.3).
//   MODE gated:    as detector, the VAD and the first stage on (the default detector).
// The input is cycled when HOPS exceeds it. All memory is static and set up before the
// timed loop, so heap use does not depend on HOPS (valgrind checks that). Prints one line:
//   hops H outputs N ns_per_hop T checksum C
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "earshot.h"

#define MAX_BLOB (1u << 17)
#define MAX_INPUT (1u << 22)
#define MAX_MEM (1u << 16)

static uint32_t blob_buf[MAX_BLOB / 4];
static uint32_t input_buf[MAX_INPUT / 4];
static uint32_t model_mem[4096];
static uint32_t state_mem[MAX_MEM / 4];

static size_t load(const char *path, void *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "core_step: cannot open %s\n", path);
        exit(2);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s engine|detector|vad|gated BLOB INPUT HOPS\n", argv[0]);
        return 2;
    }
    const int engine_mode = strcmp(argv[1], "engine") == 0;
    const int vad_mode = strcmp(argv[1], "vad") == 0;
    const int gated_mode = strcmp(argv[1], "gated") == 0;
    if (!engine_mode && !vad_mode && !gated_mode && strcmp(argv[1], "detector") != 0) {
        fprintf(stderr, "core_step: unknown mode %s\n", argv[1]);
        return 2;
    }
    const long hops = strtol(argv[4], NULL, 10);
    const size_t blob_len = load(argv[2], blob_buf, sizeof(blob_buf));
    const size_t in_len = load(argv[3], input_buf, sizeof(input_buf));
    const size_t row = engine_mode ? ES_MEL_BINS : ES_HOP_SAMPLES * sizeof(int16_t);
    const size_t rows = in_len / row;
    const char *why = NULL;
    es_model_t *m = es_model_parse(model_mem, sizeof(model_mem), (const uint8_t *)blob_buf,
        blob_len, &why);
    if (m == NULL || rows == 0 || hops < 1) {
        fprintf(stderr, "core_step: %s\n", m == NULL ? why : "empty input or HOPS < 1");
        return 2;
    }
    es_engine_t *e = NULL;
    es_detector_t *d = NULL;
    if (engine_mode) {
        e = es_engine_init(state_mem, sizeof(state_mem), m);
    } else {
        es_model_info_t info;
        es_model_get_info(m, &info);
        const es_detector_config_t cfg = {
            .cutoff = info.cutoff, .window = info.window, .refractory = info.refractory,
            .vad_enabled = (uint8_t)(vad_mode || gated_mode),
            .gate_enabled = (uint8_t)gated_mode,
        };
        d = es_detector_init(state_mem, sizeof(state_mem), m, &cfg);
    }
    if (e == NULL && d == NULL) {
        fprintf(stderr, "core_step: init failed (state memory too small?)\n");
        return 2;
    }
    const uint8_t *in = (const uint8_t *)input_buf;
    long outputs = 0;
    uint32_t checksum = 0;
    const double t0 = now_ns();
    for (long h = 0; h < hops; h++) {
        const uint8_t *x = in + (size_t)(h % (long)rows) * row;
        if (engine_mode) {
            int8_t logit;
            if (es_engine_push(e, (const int8_t *)x, &logit)) {
                outputs++;
                checksum = checksum * 31u + (uint8_t)logit;
            }
        } else {
            uint8_t prob;
            uint8_t flags;
            es_detector_run(d, (const int16_t *)x, 1, &prob, &flags);
            if (flags & ES_FLAG_OUTPUT) {
                outputs++;
                checksum = checksum * 31u + prob;
            }
        }
    }
    const double t1 = now_ns();
    printf("hops %ld outputs %ld ns_per_hop %.1f checksum %u\n", hops, outputs,
        (t1 - t0) / (double)hops, (unsigned)checksum);
    return 0;
}
