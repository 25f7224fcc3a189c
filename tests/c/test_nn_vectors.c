// Runs parity vectors (written by tests/test_sanitizers.py from the TFLite Micro interpreter)
// through the C kernels and the streaming engine, built with
// -fsanitize=address,undefined -fno-sanitize-recover=all: any out-of-bounds access,
// signed overflow or bad shift aborts. Every int8 buffer is placed at each misalignment
// 0..3 with guard bytes after it.
//
// Usage: test_nn_vectors VECTORS. Prints "kernels N models M outputs K" and exits 0 when
// every output equals TFLM's; prints "FAIL ..." and exits 1 otherwise.
//
// File format (little-endian int32 words, byte arrays padded to 4 bytes):
//   tag 1, kernel case: kind (0 conv, 1 depthwise, 2 pointwise, 3 fc), in_len, in_ch,
//     out_ch, kernel, stride, input_offset, output_offset, act_min, act_max, has_bias,
//     weight_bytes, out_len; multiplier[out_ch], shift[out_ch], bias[out_ch] if has_bias;
//     weights, input (in_len * in_ch), expected output (out_len * out_ch).
//   tag 3, int4 kernel case: as tag 1 with packed int4 weights (weight_bytes = ceil(n / 2);
//     es_nn.h ES_NN_INT4), placed to end at the filter buffer's end so that a read past
//     them is caught.
//   tag 2, model case: blob_bytes, hops, outputs; blob; features (hops * ES_MEL_BINS);
//     expected output hops int32[outputs]; expected logits int8[outputs].
//   tag 0: end.
#include <stdio.h>
#include <string.h>

#include "earshot.h"
#include "es_nn.h"

#define GUARD (16)
#define MAX_FILE (4u << 20)
#define MAX_BUF (1u << 16)

static uint8_t file_buf[MAX_FILE];
static uint8_t in_buf[MAX_BUF + 2 * GUARD];
static uint8_t filt_buf[MAX_BUF + 2 * GUARD];
static uint8_t out_buf[MAX_BUF + 2 * GUARD];
static uint32_t blob_buf[MAX_BUF / 4];
static uint32_t model_mem[4096];
static uint32_t engine_mem[MAX_BUF / 4];

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    int bad;
} reader_t;

static int32_t rd32(reader_t *r) {
    int32_t v = 0;
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, 4);
    r->p += 4;
    return v;
}

static const uint8_t *rdbytes(reader_t *r, size_t n) {
    size_t padded = (n + 3u) & ~(size_t)3u;
    if ((size_t)(r->end - r->p) < padded) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += padded;
    return p;
}

static int guard_ok(const uint8_t *g) {
    for (int i = 0; i < GUARD; i++) {
        if (g[i] != 0xA5) {
            return 0;
        }
    }
    return 1;
}

static int run_kernel_case(reader_t *r, int index, uint8_t weight_bits) {
    int32_t h[13];
    for (int i = 0; i < 13; i++) {
        h[i] = rd32(r);
    }
    const int kind = h[0];
    es_nn_params_t p = {
        .in_len = (uint16_t)h[1], .in_ch = (uint16_t)h[2], .out_ch = (uint16_t)h[3],
        .kernel = (uint8_t)h[4], .stride = (uint8_t)h[5], .input_offset = h[6],
        .output_offset = h[7], .act_min = h[8], .act_max = h[9], .weight_bits = weight_bits,
    };
    const size_t out_bytes = (size_t)h[12] * p.out_ch;
    const size_t in_bytes = (size_t)p.in_len * p.in_ch;
    const int32_t *mult = (const int32_t *)rdbytes(r, 4u * p.out_ch);
    const int32_t *shift = (const int32_t *)rdbytes(r, 4u * p.out_ch);
    const int32_t *bias = h[10] ? (const int32_t *)rdbytes(r, 4u * p.out_ch) : NULL;
    const uint8_t *weights = rdbytes(r, (size_t)h[11]);
    const uint8_t *input = rdbytes(r, in_bytes);
    const uint8_t *expect = rdbytes(r, out_bytes);
    if (r->bad || in_bytes > MAX_BUF || out_bytes > MAX_BUF || (size_t)h[11] > MAX_BUF) {
        printf("FAIL case %d: truncated or too large\n", index);
        return 1;
    }
    es_nn_quant_t q = {.multiplier = mult, .shift = shift};
    for (unsigned mis = 0; mis < 4; mis++) {
        uint8_t *in = in_buf + GUARD + mis;
        uint8_t *filt = weight_bits == ES_NN_INT4
            ? filt_buf + sizeof(filt_buf) - (size_t)h[11] - ((mis + 2u) & 3u)
            : filt_buf + GUARD + ((mis + 2u) & 3u);
        uint8_t *out = out_buf + GUARD + ((mis + 1u) & 3u);
        memcpy(in, input, in_bytes);
        memcpy(filt, weights, (size_t)h[11]);
        memset(out_buf, 0xA5, sizeof(out_buf));
        const int8_t *x = (const int8_t *)in;
        const int8_t *w = (const int8_t *)filt;
        int8_t *y = (int8_t *)out;
        if (kind == 0) {
            es_nn_conv(&p, &q, x, w, bias, y);
        } else if (kind == 1) {
            es_nn_depthwise(&p, &q, x, w, bias, y);
        } else if (kind == 2) {
            es_nn_pointwise(&p, &q, x, w, bias, y);
        } else {
            es_nn_fully_connected(&p, &q, x, w, bias, y);
        }
        if (memcmp(out, expect, out_bytes) != 0) {
            printf("FAIL case %d (kind %d) misalign %u: output differs from TFLM\n", index, kind,
                mis);
            return 1;
        }
        if (!guard_ok(out + out_bytes) || !guard_ok(out - GUARD)) {
            printf("FAIL case %d: guard bytes overwritten\n", index);
            return 1;
        }
    }
    return 0;
}

static int run_model_case(reader_t *r, int index, int *outputs) {
    const int32_t blob_bytes = rd32(r);
    const int32_t hops = rd32(r);
    const int32_t n_out = rd32(r);
    const uint8_t *blob = rdbytes(r, (size_t)blob_bytes);
    const uint8_t *feats = rdbytes(r, (size_t)hops * ES_MEL_BINS);
    const int32_t *want_hops = (const int32_t *)rdbytes(r, 4u * (size_t)n_out);
    const uint8_t *want = rdbytes(r, (size_t)n_out);
    if (r->bad || (size_t)blob_bytes > sizeof(blob_buf)) {
        printf("FAIL model %d: truncated or too large\n", index);
        return 1;
    }
    memcpy(blob_buf, blob, (size_t)blob_bytes);
    const char *why = NULL;
    if (es_model_mem_size() > sizeof(model_mem)) {
        printf("FAIL model %d: model needs %zu bytes\n", index, es_model_mem_size());
        return 1;
    }
    es_model_t *m = es_model_parse(model_mem, sizeof(model_mem), (const uint8_t *)blob_buf,
        (size_t)blob_bytes, &why);
    if (m == NULL) {
        printf("FAIL model %d: %s\n", index, why ? why : "parse error");
        return 1;
    }
    // The engine at an odd address, guard bytes after its memory.
    const size_t need = es_engine_mem_size(m);
    uint8_t *mem = (uint8_t *)engine_mem + 1;
    if (need + 1 + GUARD > sizeof(engine_mem)) {
        printf("FAIL model %d: engine needs %zu bytes\n", index, need);
        return 1;
    }
    memset(engine_mem, 0xA5, sizeof(engine_mem));
    es_engine_t *e = es_engine_init(mem, need, m);
    if (e == NULL) {
        printf("FAIL model %d: engine init\n", index);
        return 1;
    }
    int32_t k = 0;
    for (int32_t t = 0; t < hops; t++) {
        int8_t logit = 0;
        if (es_engine_push(e, (const int8_t *)feats + (size_t)t * ES_MEL_BINS, &logit)) {
            if (k >= n_out || want_hops[k] != t || (int8_t)want[k] != logit) {
                printf("FAIL model %d: output %d at hop %d: engine %d, TFLM %d at hop %d\n",
                    index, (int)k, (int)t, logit, k < n_out ? (int8_t)want[k] : 0,
                    k < n_out ? (int)want_hops[k] : -1);
                return 1;
            }
            k++;
        }
    }
    if (k != n_out || !guard_ok(mem + need)) {
        printf("FAIL model %d: %d outputs of %d, or guard bytes overwritten\n", index, (int)k,
            (int)n_out);
        return 1;
    }
    *outputs += k;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        printf("usage: %s VECTORS\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        printf("FAIL cannot open %s\n", argv[1]);
        return 1;
    }
    size_t n = fread(file_buf, 1, sizeof(file_buf), f);
    fclose(f);
    reader_t r = {file_buf, file_buf + n, 0};
    int kernels = 0, models = 0, outputs = 0;
    for (;;) {
        int32_t tag = rd32(&r);
        if (r.bad) {
            printf("FAIL truncated file\n");
            return 1;
        }
        if (tag == 0) {
            break;
        }
        int fail = tag == 1 ? run_kernel_case(&r, kernels++, 8u)
                   : tag == 3 ? run_kernel_case(&r, kernels++, ES_NN_INT4)
                   : run_model_case(&r, models++, &outputs);
        if (fail) {
            return 1;
        }
    }
    printf("kernels %d models %d outputs %d\n", kernels, models, outputs);
    return 0;
}
