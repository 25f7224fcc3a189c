// Cost of the Earshot VAD per 10 ms hop (used by bench/vad.py).
//
// Usage: vad_cost FEATURES.bin REPEATS
// FEATURES.bin holds n rows of ES_MEL_BINS int8 features (row-major). The VAD (default
// parameters) runs over all rows REPEATS times; prints "hops N ns_per_hop T open K".
// Under valgrind --tool=callgrind --toggle-collect=es_vad_update with REPEATS = 1, the
// instruction count divided by N is the cost per call.
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "earshot.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FEATURES.bin REPEATS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = (size_t)bytes / ES_MEL_BINS;
    int8_t *feat = malloc(n * ES_MEL_BINS + 1u);
    if (feat == NULL || fread(feat, ES_MEL_BINS, n, f) != n) {
        fprintf(stderr, "%s: cannot read %zu rows\n", argv[1], n);
        return 2;
    }
    fclose(f);
    int repeats = atoi(argv[2]);
    if (repeats < 1 || n == 0) {
        fprintf(stderr, "need REPEATS >= 1 and at least one row\n");
        return 2;
    }
    static uint32_t vad_mem[64];  // es_vad_mem_size() bytes, checked below
    if (es_vad_mem_size() > sizeof(vad_mem)) {
        fprintf(stderr, "es_vad_mem_size() = %zu > %zu\n", es_vad_mem_size(), sizeof(vad_mem));
        return 1;
    }
    long open = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < repeats; r++) {
        es_vad_t *vad = es_vad_init(vad_mem, sizeof(vad_mem), NULL);
        if (vad == NULL) {
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            open += es_vad_update(vad, feat + i * ES_MEL_BINS);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("hops %zu ns_per_hop %.2f open %ld\n", n, ns / ((double)n * repeats), open);
    free(feat);
    return 0;
}
