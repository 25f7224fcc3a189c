// Extreme inputs through the frontend, VAD, posterior and CRC, built with
// -fsanitize=address,undefined -fno-sanitize-recover (tests/test_frontend.py):
// any signed overflow, bad shift or out-of-bounds access aborts. Also checks
// guard bytes around the caller's buffers (each handed over at an odd address) and
// prints one line per case. Public API (earshot.h) only.
#include <stdio.h>
#include <string.h>

#include "earshot.h"

#define HOPS (8)
#define GUARD (16)

static int check_guard(const uint8_t *g, const char *what) {
    for (int i = 0; i < GUARD; i++) {
        if (g[i] != 0xA5) {
            printf("FAIL guard overwritten: %s\n", what);
            return 1;
        }
    }
    return 0;
}

int main(void) {
    static int16_t x[HOPS * ES_HOP_SAMPLES];
    static uint8_t mem[8192 + 2 * GUARD];
    static uint8_t small[256 + 2 * GUARD];  // the VAD's, then the posterior's
    int8_t feats[HOPS * ES_MEL_BINS + GUARD];
    int fails = 0;
    size_t need = es_frontend_mem_size();
    size_t vad_need = es_vad_mem_size();
    size_t post_need = es_posterior_mem_size();
    if (need + 2 * GUARD + 1 > sizeof(mem) || vad_need + 2 * GUARD + 1 > sizeof(small) ||
        post_need + 2 * GUARD + 1 > sizeof(small)) {
        printf("FAIL buffers too small: frontend %zu vad %zu posterior %zu bytes\n", need,
            vad_need, post_need);
        return 1;
    }
    for (int c = 0; c < 7; c++) {
        for (int i = 0; i < HOPS * ES_HOP_SAMPLES; i++) {
            switch (c) {
                case 0: x[i] = 0; break;
                case 1: x[i] = (i & 1) ? 32767 : -32768; break;          // Nyquist, full scale
                case 2: x[i] = ((i / 8) & 1) ? 32767 : -32768; break;    // 1 kHz square
                case 3: x[i] = -32768; break;                            // DC, most negative
                case 4: x[i] = (i == 700) ? 32767 : 0; break;            // impulse
                case 5: x[i] = (int16_t)((i * 7919) % 65536 - 32768); break; // full-range ramp noise
                default: x[i] = (i & 1) ? 1 : -1; break;                 // 1 LSB
            }
        }
        memset(mem, 0xA5, sizeof(mem));
        memset(feats + HOPS * ES_MEL_BINS, 0xA5, GUARD);
        // Odd address: the core must align internally.
        es_frontend_t *fe = es_frontend_init(mem + GUARD + 1, need);
        if (fe == NULL) {
            printf("FAIL init\n");
            return 1;
        }
        es_frontend_run(fe, x, HOPS, feats);
        fails += check_guard(mem, "before frontend");
        fails += check_guard(mem + GUARD + 1 + need, "after frontend");
        fails += check_guard((const uint8_t *)feats + HOPS * ES_MEL_BINS, "after features");
        int lo = 127, hi = -128;
        for (int i = 0; i < HOPS * ES_MEL_BINS; i++) {
            lo = feats[i] < lo ? feats[i] : lo;
            hi = feats[i] > hi ? feats[i] : hi;
        }
        memset(small, 0xA5, sizeof(small));
        es_vad_t *vad = es_vad_init(small + GUARD + 1, vad_need, NULL);
        if (vad == NULL) {
            printf("FAIL vad init\n");
            return 1;
        }
        int open = 0, last = 0;
        for (int h = 0; h < HOPS; h++) {
            last = es_vad_update(vad, feats + h * ES_MEL_BINS);
            open += last;
        }
        es_vad_state_t state;
        es_vad_get_state(vad, &state);
        if (state.open != last || state.primed != ES_VAD_PRIME_HOPS) {
            printf("FAIL vad state: open %d (returned %d), primed %d\n", state.open, last,
                state.primed);
            fails++;
        }
        fails += check_guard(small, "before vad");
        fails += check_guard(small + GUARD + 1 + vad_need, "after vad");
        printf("case %d min %d max %d vad %d\n", c, lo, hi, open);
    }
    if (es_frontend_init(mem, es_frontend_mem_size() - 1) != NULL) {
        printf("FAIL short buffer accepted\n");
        fails++;
    }
    if (es_vad_init(small + 1, vad_need - 1, NULL) != NULL ||
        es_posterior_init(small + 1, post_need - 1, 255, 1, 0) != NULL) {
        printf("FAIL short buffer accepted\n");
        fails++;
    }
    memset(small, 0xA5, sizeof(small));
    es_posterior_t *post = es_posterior_init(small + GUARD + 1, post_need, 255, ES_MAX_WINDOW,
        65535);
    if (post == NULL) {
        printf("FAIL posterior init\n");
        return 1;
    }
    int fired = 0;
    for (int i = 0; i < 100; i++) {
        fired += es_posterior_push(post, 255);
    }
    fails += check_guard(small, "before posterior");
    fails += check_guard(small + GUARD + 1 + post_need, "after posterior");
    printf("posterior fired %d\n", fired);
    printf("crc %08lx\n", (unsigned long)es_crc32(0, (const uint8_t *)"123456789", 9));
    printf(fails ? "FAIL\n" : "OK\n");
    return fails != 0;
}
