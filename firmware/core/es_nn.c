// Earshot int8 kernels: TFLite integer semantics. The reference kernels (ES_NN_OPT 0) are
// the specification; the optimised twins (ES_NN_OPT 1, the default) are bit-exact with
// them. See es_nn.h for the sources each function follows.
#include "es_nn.h"

#include "es_internal.h"

// gemmlowp SaturatingRoundingDoublingHighMul (fixedpoint.h), as used by TFLite common.h:
// the high 32 bits of 2*a*b, rounded half away from zero, saturating the single overflow
// case a == b == INT32_MIN.
static int32_t es_nn_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    // C99 division truncates toward zero, as the C++ reference does.
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

// gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero.
static int32_t es_nn_rdbpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    // The reference's arithmetic right shift, as a well-defined floor division.
    return es_asr32(x, (unsigned)exponent) + (remainder > threshold ? 1 : 0);
}

int32_t es_nn_requantize(int32_t x, int32_t multiplier, int32_t shift) {
    #if ES_NN_SINGLE_ROUNDING
    // TFLite common.h, TFLITE_SINGLE_ROUNDING branch.
    const int total_shift = 31 - (int)shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    const int64_t result = es_asr64((int64_t)x * (int64_t)multiplier + round, (unsigned)total_shift);
    return (int32_t)result;
    #else
    // TFLite common.h, default branch. The left shift multiplies in int32 in the reference;
    // done on uint32 here to keep its two's-complement wrap well defined.
    const int left_shift = shift > 0 ? (int)shift : 0;
    const int right_shift = shift > 0 ? 0 : (int)-shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return es_nn_rdbpot(es_nn_srdhm(shifted, multiplier), right_shift);
    #endif
}

size_t es_nn_out_len(size_t in_len, size_t kernel, size_t stride) {
    if (kernel == 0 || stride == 0 || in_len < kernel) {
        return 0;
    }
    return (in_len - kernel) / stride + 1;
}

// Requantize one accumulator of output channel c and clamp it (shared by every kernel).
static int8_t es_nn_output(const es_nn_params_t *p, const es_nn_quant_t *q, size_t c,
    int32_t acc) {
    acc = es_nn_requantize(acc, q->multiplier[c], q->shift[c]) + p->output_offset;
    if (acc < p->act_min) {
        acc = p->act_min;
    }
    if (acc > p->act_max) {
        acc = p->act_max;
    }
    return (int8_t)acc;
}

// Filter element e (es_nn.h layout): int8, or the packed int4 nibble widened to int32.
static int32_t es_nn_weight(const int8_t *filter, size_t e, int int4) {
    if (!int4) {
        return filter[e];
    }
    const uint32_t b = ((const uint8_t *)filter)[e >> 1];
    return (int32_t)(((e & 1u) != 0 ? b >> 4 : b & 15u) ^ 8u) - 8;
}

void es_nn_unpack_int4(const uint8_t *packed, size_t n, int8_t *out) {
    for (size_t e = 0; e < n; e++) {
        out[e] = (int8_t)es_nn_weight((const int8_t *)packed, e, 1);
    }
}

#if !ES_NN_OPT

// ---------------------------------------------------------------------------------------
// Reference kernels: the specification, written as the TFLite reference loops.

// One output row of a standard convolution from the kernel-row window at `input`.
static void es_nn_conv_row(const es_nn_params_t *p, const es_nn_quant_t *q, size_t kernel,
    const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output) {
    const size_t taps = kernel * p->in_ch;  // the window is contiguous: kernel rows
    const int int4 = p->weight_bits == ES_NN_INT4;
    for (size_t c = 0; c < p->out_ch; c++) {
        int32_t acc = 0;
        for (size_t i = 0; i < taps; i++) {
            acc += es_nn_weight(filter, c * taps + i, int4) * ((int32_t)input[i] + p->input_offset);
        }
        if (bias != NULL) {
            acc += bias[c];
        }
        output[c] = es_nn_output(p, q, c, acc);
    }
}

void es_nn_conv(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    const size_t out_len = es_nn_out_len(p->in_len, p->kernel, p->stride);
    for (size_t t = 0; t < out_len; t++) {
        es_nn_conv_row(p, q, p->kernel, input + t * p->stride * p->in_ch, filter, bias,
            output + t * p->out_ch);
    }
}

void es_nn_pointwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    for (size_t t = 0; t < p->in_len; t++) {
        es_nn_conv_row(p, q, 1, input + t * p->in_ch, filter, bias, output + t * p->out_ch);
    }
}

void es_nn_fully_connected(const es_nn_params_t *p, const es_nn_quant_t *q,
    const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output) {
    es_nn_conv_row(p, q, 1, input, filter, bias, output);
}

void es_nn_depthwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    const size_t ch = p->in_ch;
    const size_t out_len = es_nn_out_len(p->in_len, p->kernel, p->stride);
    for (size_t t = 0; t < out_len; t++) {
        const int8_t *window = input + t * p->stride * ch;
        for (size_t c = 0; c < ch; c++) {
            int32_t acc = 0;
            for (size_t k = 0; k < p->kernel; k++) {
                acc += es_nn_weight(filter, k * ch + c, p->weight_bits == ES_NN_INT4)
                    * ((int32_t)window[k * ch + c] + p->input_offset);
            }
            if (bias != NULL) {
                acc += bias[c];
            }
            output[t * ch + c] = es_nn_output(p, q, c, acc);
        }
    }
}

void es_nn_rows(const es_nn_params_t *p, const es_nn_quant_t *q, size_t in_len,
    size_t kernel, size_t stride, int depthwise, const int8_t *input, const int8_t *filter,
    const int32_t *bias, int8_t *output) {
    es_nn_params_t r = *p;
    r.in_len = (uint16_t)in_len;
    r.kernel = (uint8_t)kernel;
    r.stride = (uint8_t)stride;
    (depthwise ? es_nn_depthwise : es_nn_conv)(&r, q, input, filter, bias, output);
}

#else // ES_NN_OPT

// ---------------------------------------------------------------------------------------
// Optimised twins, bit-exact with the reference above (tests/test_nn_kernels.py builds
// both and compares them over the same table of shapes). Integer sums are regrouped, never
// rounded, so every accumulator equals the reference's:
// - sum f * (x + offset) = sum f * x + offset * sum f: the inner loop is a plain int8 dot
//   product (two products per step), the offset costs one multiply per output channel;
// - output rows are walked with pointers (no division for the row count);
// - conv, pointwise and fully connected share one loop (es_nn_dense), and every kernel
//   shares one out-of-line requantization (es_nn_output): small code for a 4 KB cache.
// The reference accumulates in int32 too; models whose sums would overflow int32 are
// outside TFLite's own contract.

// One output row of any kernel here. Output channel c accumulates `taps` products
// f[j * step] * x[j * step], where f starts at filter + c * f_chan and x at
// input + c * x_chan: conv / pointwise / FC walk `kernel` contiguous rows (step 1, x_chan 0),
// depthwise walks one channel down the window (step = channels, f_chan = x_chan = 1).
static void es_nn_row(const es_nn_params_t *p, const es_nn_quant_t *q, size_t taps,
    size_t step, size_t f_chan, size_t x_chan, const int8_t *input, const int8_t *filter,
    const int32_t *bias, int8_t *output) {
    const int int4 = p->weight_bits == ES_NN_INT4;
    for (size_t c = 0; c < p->out_ch; c++) {
        size_t e = c * f_chan;  // filter element of tap j
        const int8_t *x = input + c * x_chan;
        int32_t acc = bias != NULL ? bias[c] : 0;
        int32_t fsum = 0;
        size_t j = 0;
        #if defined(__OPTIMIZE_SIZE__)
        // Size-optimised builds (-Os, the device): contiguous packed int4 taps two per filter
        // byte (speed builds take es_nn_row4 for these).
        if (int4 && step == 1 && (e & 1u) == 0) {
            const uint8_t *fb = (const uint8_t *)filter + (e >> 1);
            for (; j + 2 <= taps; j += 2, fb++) {
                const uint32_t t = *fb ^ 0x88u;  // u = w + 8 per nibble
                const int32_t lo = (int32_t)(t & 15u) - 8, hi = (int32_t)(t >> 4) - 8;
                acc += lo * x[j] + hi * x[j + 1];
                fsum += lo + hi;
            }
        }
        #else
        // Speed-optimised builds: contiguous int8 taps four per step. Size-optimised (-Os,
        // the device) builds keep only the loop below, which also does every tap alone.
        if (!int4 && step == 1) {
            const int8_t *f = filter + e;
            for (; j + 4 <= taps; j += 4) {
                acc += (int32_t)f[j] * x[j] + (int32_t)f[j + 1] * x[j + 1] +
                    (int32_t)f[j + 2] * x[j + 2] + (int32_t)f[j + 3] * x[j + 3];
                fsum += (int32_t)f[j] + f[j + 1] + f[j + 2] + f[j + 3];
            }
        }
        #endif
        e += j;  // j > 0 only when step == 1
        x += j;
        for (; j < taps; j++) {
            const int32_t w = es_nn_weight(filter, e, int4);
            acc += w * *x;
            fsum += w;
            e += step;
            x += step;
        }
        output[c] = es_nn_output(p, q, c, acc + p->input_offset * fsum);
    }
}

// One output row of packed int4 weights over contiguous taps (conv, pointwise, FC), an even
// number of them: every channel's weights start on a byte. Each byte's two weights are read
// as u = w + 8 in 0..15 (one xor), and sum w * x = sum u * x - 8 * sum x, with sum x taken
// once per row (the window is the same for every channel); likewise sum w = sum u - 8 * taps.
// Speed builds only (two channels per pass, each input tap loaded once for both): size
// builds (-Os, the device's hot path) read every int4 tap through es_nn_weight instead.
#if !defined(__OPTIMIZE_SIZE__)
static void es_nn_row4(const es_nn_params_t *p, const es_nn_quant_t *q, size_t taps,
    const int8_t *x, const uint8_t *filter, const int32_t *bias, int8_t *output) {
    const size_t bytes = taps / 2u;
    int32_t xsum = 0;
    for (size_t j = 0; j < taps; j++) {
        xsum += x[j];
    }
    const int32_t fix = -8 * xsum - 8 * (int32_t)taps * p->input_offset;
    size_t c = 0;
    for (; c + 2u <= p->out_ch; c += 2u) {
        const uint8_t *f0 = filter + c * bytes;
        const uint8_t *f1 = f0 + bytes;
        int32_t a0 = 0, a1 = 0, s0 = 0, s1 = 0;
        for (size_t k = 0; k < bytes; k++) {
            const int32_t x0 = x[2u * k], x1 = x[2u * k + 1u];
            const uint32_t t0 = f0[k] ^ 0x88u, t1 = f1[k] ^ 0x88u;
            const int32_t u00 = (int32_t)(t0 & 15u), u01 = (int32_t)(t0 >> 4);
            const int32_t u10 = (int32_t)(t1 & 15u), u11 = (int32_t)(t1 >> 4);
            a0 += u00 * x0 + u01 * x1;
            a1 += u10 * x0 + u11 * x1;
            s0 += u00 + u01;
            s1 += u10 + u11;
        }
        output[c] = es_nn_output(p, q, c, (bias != NULL ? bias[c] : 0) + a0 + fix
            + p->input_offset * s0);
        output[c + 1u] = es_nn_output(p, q, c + 1u, (bias != NULL ? bias[c + 1u] : 0) + a1
            + fix + p->input_offset * s1);
    }
    for (; c < p->out_ch; c++) {
        const uint8_t *f = filter + c * bytes;
        int32_t a = 0, s = 0;
        for (size_t k = 0; k < bytes; k++) {
            const uint32_t t = f[k] ^ 0x88u;
            const int32_t lo = (int32_t)(t & 15u), hi = (int32_t)(t >> 4);
            a += lo * x[2u * k] + hi * x[2u * k + 1u];
            s += lo + hi;
        }
        output[c] = es_nn_output(p, q, c, (bias != NULL ? bias[c] : 0) + a + fix
            + p->input_offset * s);
    }
}
#endif

// Output rows t = 0, 1, ... while the window [t * stride, t * stride + kernel) fits in
// in_len rows. Depthwise when `depthwise`, else a convolution with filter [out][kernel][in].
void es_nn_rows(const es_nn_params_t *p, const es_nn_quant_t *q, size_t in_len,
    size_t kernel, size_t stride, int depthwise, const int8_t *input, const int8_t *filter,
    const int32_t *bias, int8_t *output) {
    const size_t ch = p->in_ch;
    const size_t taps = depthwise ? kernel : kernel * ch;
    const size_t step = depthwise ? ch : 1;
    const size_t f_chan = depthwise ? 1 : taps;
    for (size_t end = kernel; end <= in_len && kernel != 0 && stride != 0; end += stride) {
        #if !defined(__OPTIMIZE_SIZE__)
        if (p->weight_bits == ES_NN_INT4 && !depthwise && (taps & 1u) == 0) {
            es_nn_row4(p, q, taps, input, (const uint8_t *)filter, bias, output);
        } else
        #endif
        {
            es_nn_row(p, q, taps, step, f_chan, depthwise ? 1 : 0, input, filter, bias, output);
        }
        input += stride * ch;
        output += p->out_ch;
    }
}

void es_nn_conv(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    es_nn_rows(p, q, p->in_len, p->kernel, p->stride, 0, input, filter, bias, output);
}

void es_nn_pointwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    es_nn_rows(p, q, p->in_len, 1, 1, 0, input, filter, bias, output);
}

void es_nn_fully_connected(const es_nn_params_t *p, const es_nn_quant_t *q,
    const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output) {
    es_nn_rows(p, q, 1, 1, 1, 0, input, filter, bias, output);
}

void es_nn_depthwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output) {
    es_nn_rows(p, q, p->in_len, p->kernel, p->stride, 1, input, filter, bias, output);
}

#endif // ES_NN_OPT
