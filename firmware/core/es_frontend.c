// Earshot frontend: int16 PCM at 16 kHz -> int8 log-mel, one vector per hop.
//
// Integer only, bit-identical on every conforming C99 compiler. Per hop:
//  1. frame: the last ES_WINDOW_SAMPLES samples (zeros before the stream start);
//     the frame mean (sum / 480, truncated toward zero) is subtracted (DC removal).
//  2. window: x[n] = (s[n] - mean) * hann_q15[n]  (|x| < 2^31).
//  3. block floating point: x is scaled by 2^e (e in -4..+26) so that its peak
//     magnitude lies in [2^26, 2^27); an all-zero frame gives -128 everywhere.
//  4. 512-point real FFT (frame zero-padded from 480) as a 256-point complex
//     radix-2 decimation-in-time FFT of z[n] = x[2n] + i x[2n+1] in int32 with
//     Q15 twiddles, every stage scaled by 1/2 with rounding (output = DFT / 256;
//     components stay below 2^28 + 2^27), then the real split step
//     X[k] = (Z[k] + conj Z[256-k]) / 2 - i W^k (Z[k] - conj Z[256-k]) / 2,
//     W = exp(-2 pi i / 512), evaluated in int64 for the bins the mel filters use.
//  5. power |X[k]|^2 of the bin scaled by 2^-12 (uint64), HTK triangular mel
//     filters with Q15 weights accumulated in uint64 (cannot overflow: by Parseval
//     the scaled powers of one frame sum to less than 512 * 480 * 2^54 / 2^24 < 2^48,
//     and the two weights a bin feeds add up to 2^15).
//  6. integer log2 in Q16 (leading-zero count + 33-entry table, linear
//     interpolation; error < 2^-11), minus the known scale: the mel energy E in
//     (int16 sample units)^2 is E_int / 2^(21 + 2e).
//  7. q = round(8 * (log2 E - 8)) - 128 saturated to int8 (es_tables.h).
// Cost per hop: 480 window multiplies (16 x 16 bits), 8 * 128 radix-2 butterflies
// of 4 multiplies (32 x 16 bits, 64-bit sums), 240 split bins of 6 multiplies and 2
// squares, 480 multiply-adds for the mel filters, 40 logarithms; one division (the mean).
#include <string.h>

#include "earshot.h"
#include "es_internal.h"
#include "es_tables.h"

#define ES_FFT_HALF (ES_FFT_SIZE / 2)  // complex points of the packed FFT
#define ES_HISTORY (ES_WINDOW_SAMPLES - ES_HOP_SAMPLES)
#define ES_NORM_BIT (26)        // normalised peak lies in [2^26, 2^27)
#define ES_POWER_SHIFT (12)     // FFT bins are scaled by 2^-12 before squaring
#define ES_Q16_ONE ((int32_t)1 << 16)

// Keeps a helper out of line in size-optimised builds (-Os, as for the device), where
// inlining it at every call would only grow the code; speed-optimised builds inline it.
#if defined(__GNUC__) && defined(__OPTIMIZE_SIZE__)
#define ES_NOINLINE __attribute__((noinline))
#else
#define ES_NOINLINE
#endif

struct es_frontend_t {
    int16_t history[ES_HISTORY];       // the last 320 samples, oldest first
    int32_t fft[2 * ES_FFT_HALF];      // scratch: interleaved re, im
};

size_t es_frontend_mem_size(void) {
    return sizeof(es_frontend_t) + ES_ALIGN_SLACK;
}

es_frontend_t *es_frontend_init(void *mem, size_t mem_len) {
    if (mem == NULL || mem_len < es_frontend_mem_size()) {
        return NULL;
    }
    es_frontend_t *fe = es_align_ptr(mem);
    es_frontend_reset(fe);
    return fe;
}

void es_frontend_reset(es_frontend_t *fe) {
    if (fe != NULL) {
        memset(fe->history, 0, sizeof(fe->history));
    }
}

// Index of the highest set bit of x > 0 (floor(log2 x)).
static unsigned es_msb32(uint32_t x) {
    unsigned n = 0;
    for (unsigned s = 16; s > 0; s >>= 1) {
        if (x >> s) {
            x >>= s;
            n += s;
        }
    }
    return n;
}

static unsigned es_msb64(uint64_t x) {
    uint32_t hi = (uint32_t)(x >> 32);
    return hi != 0 ? 32u + es_msb32(hi) : es_msb32((uint32_t)x);
}

// log2(x) in Q16 for x > 0.
static int32_t es_log2_q16(uint64_t x) {
    unsigned msb = es_msb64(x);
    uint64_t m = x << (63u - msb);  // leading one at bit 63
    unsigned idx = (unsigned)(m >> (63u - ES_LOG2_LUT_BITS)) & ((1u << ES_LOG2_LUT_BITS) - 1u);
    int32_t frac = (int32_t)((m >> (63u - ES_LOG2_LUT_BITS - 16u)) & 0xFFFFu);
    int32_t lo = es_log2_lut_q16[idx];
    int32_t step = es_log2_lut_q16[idx + 1u] - lo;  // < 2^16, so step * frac < 2^32 / 2
    return (int32_t)msb * ES_Q16_ONE + lo + es_asr32(step * frac, 16);
}

// 32768 * a + x * c + y * s in int64, exactly (every caller keeps it below 2^52). The
// FFT, the real split and the power share this one 64-bit multiply-add, kept out of line
// so that the code holds it once (64-bit arithmetic is long on 32-bit cores such as Xtensa).
static ES_NOINLINE int64_t es_mac_q15(int32_t a, int32_t x, int32_t c, int32_t y, int32_t s) {
    return (int64_t)a * 32768 + (int64_t)x * c + (int64_t)y * s;
}

// One butterfly output: (32768 * a + x * c + y * s + 2^15) / 2^16, rounded down.
static int32_t es_butterfly(int32_t a, int32_t x, int32_t c, int32_t y, int32_t s) {
    return (int32_t)es_asr64(es_mac_q15(a, x, c, y, s) + 32768, 16);
}

// One component of a real-split bin scaled by 2^-(8 + ES_POWER_SHIFT), rounded down:
// es_asr64(es_mac_q15(a, x, c, y, s), 8 + ES_POWER_SHIFT). Out of line, so the code holds
// the 64-bit shift once for both components (less hot-path code).
static ES_NOINLINE int32_t es_split_part(int32_t a, int32_t x, int32_t c, int32_t y,
    int32_t s) {
    return (int32_t)es_asr64(es_mac_q15(a, x, c, y, s), 8 + ES_POWER_SHIFT);
}

// In-place 256-point complex FFT, decimation in time, scaled by 1/2 per stage.
static void es_fft_half(int32_t *z) {
    // Bit-reversal permutation (Gold-Rader).
    for (unsigned i = 1, j = 0; i < ES_FFT_HALF; i++) {
        unsigned bit = ES_FFT_HALF >> 1;
        while (j & bit) {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if (i < j) {
            int32_t t = z[2 * i];
            z[2 * i] = z[2 * j];
            z[2 * j] = t;
            t = z[2 * i + 1];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j + 1] = t;
        }
    }
    for (unsigned half = 1; half < ES_FFT_HALF; half <<= 1) {
        // W_{2 half}^j = W_512^{j * 256 / half}.
        unsigned tw_step = ES_FFT_HALF / half;
        for (unsigned j = 0; j < half; j++) {
            int32_t c = es_cos_q15[j * tw_step];
            int32_t s = es_sin_q15[j * tw_step];
            for (unsigned a = j; a < ES_FFT_HALF; a += 2 * half) {
                int32_t *za = &z[2 * a];
                int32_t *zb = &z[2 * (a + half)];
                int32_t ar = za[0], ai = za[1], br = zb[0], bi = zb[1];
                // t = b * (c - i s) in Q15; (a +- t) / 2, rounded: one shift by 15 + 1.
                za[0] = es_butterfly(ar, br, c, bi, s);
                za[1] = es_butterfly(ai, bi, c, -br, s);
                zb[0] = es_butterfly(ar, -br, c, -bi, s);
                zb[1] = es_butterfly(ai, -bi, c, br, s);
            }
        }
    }
}

void es_frontend_hop(es_frontend_t *fe, const int16_t *samples, int8_t *out) {
    int32_t *z = fe->fft;
    if (out == NULL) {
        goto history;  // only move the history on (es_internal.h)
    }
    // 1. DC removal over the frame = history + new hop.
    int32_t sum = 0;
    for (unsigned n = 0; n < ES_HISTORY; n++) {
        sum += fe->history[n];
    }
    for (unsigned n = 0; n < ES_HOP_SAMPLES; n++) {
        sum += samples[n];
    }
    int32_t mean = sum / ES_WINDOW_SAMPLES;  // truncates toward zero (C99 6.5.5p6)
    // 2. Window into the FFT buffer (real input packed as complex pairs), track the peak.
    uint32_t peak = 0;
    for (unsigned n = 0; n < ES_WINDOW_SAMPLES; n++) {
        int32_t s = n < ES_HISTORY ? fe->history[n] : samples[n - ES_HISTORY];
        int32_t x = (s - mean) * es_hann_q15[n];
        uint32_t mag = x < 0 ? (uint32_t)0 - (uint32_t)x : (uint32_t)x;
        peak = mag > peak ? mag : peak;
        z[n] = x;
    }
    memset(&z[ES_WINDOW_SAMPLES], 0, (ES_FFT_SIZE - ES_WINDOW_SAMPLES) * sizeof(z[0]));
history:
    // Keep the newest ES_HISTORY samples for the next hop.
    memmove(fe->history, fe->history + ES_HOP_SAMPLES,
        (ES_HISTORY - ES_HOP_SAMPLES) * sizeof(fe->history[0]));
    memcpy(fe->history + (ES_HISTORY - ES_HOP_SAMPLES), samples,
        ES_HOP_SAMPLES * sizeof(samples[0]));
    if (out == NULL) {
        return;
    }
    if (peak == 0) {
        memset(out, -128, ES_MEL_BINS);
        return;
    }
    // 3. Block floating point: peak into [2^26, 2^27).
    int e = ES_NORM_BIT - (int)es_msb32(peak);
    if (e > 0) {
        int32_t scale = (int32_t)1 << e;
        for (unsigned n = 0; n < ES_WINDOW_SAMPLES; n++) {
            z[n] *= scale;
        }
    } else if (e < 0) {
        for (unsigned n = 0; n < ES_WINDOW_SAMPLES; n++) {
            z[n] = es_asr32(z[n], (unsigned)-e);
        }
    }
    // 4. Complex FFT of the packed frame.
    es_fft_half(z);
    // 4-5. Real split for the mel bins, power, mel filters.
    uint64_t mel[ES_MEL_BINS + 1];  // [ES_MEL_BINS] collects nothing useful; avoids a branch
    memset(mel, 0, sizeof(mel));
    for (unsigned k = ES_MEL_FIRST_BIN; k < ES_MEL_END_BIN; k++) {
        unsigned kc = ES_FFT_HALF - k;  // 0 < k < 256, so 0 < kc < 256
        int32_t zr = z[2 * k], zi = z[2 * k + 1];
        int32_t cr = z[2 * kc], ci = -z[2 * kc + 1];  // conj Z[256 - k]
        int32_t ar = zr + cr, ai = zi + ci;           // 2 Xe (|.| < 2^30)
        int32_t br = zi - ci, bi = cr - zr;           // 2 Xo = -i (Z - conj)
        int32_t c = es_cos_q15[k], s = es_sin_q15[k];
        // 2^16 X[k] / 2^8 = 32768 * (A + W B), W = c - i s; |.| < 2^45.
        // Now x = X_512[k] * 2^8 where X_512 is the DFT of the normalised frame;
        // scale the bin by 2^-ES_POWER_SHIFT in total before squaring.
        // |pr|, |pi| < 2^25, so the power (< 2^51) is one more es_mac_q15.
        int32_t pr = es_split_part(ar, br, c, bi, s);
        int32_t pi = es_split_part(ai, bi, c, -br, s);
        uint64_t power = (uint64_t)es_mac_q15(0, pr, pr, pi, pi);
        unsigned ch = es_mel_channel[k - ES_MEL_FIRST_BIN];
        uint64_t w = es_mel_weight_q15[k - ES_MEL_FIRST_BIN];
        uint64_t part = w * power;
        mel[ch] += part;
        if (ch > 0) {
            mel[ch - 1] += power * 32768u - part;  // (32768 - w) * power
        }
    }
    // 6-7. log2 and the affine map. E_int = E * 2^15 (weights) * 2^(30 + 2e)
    // (Hann Q15, block scaling) / 2^(2 * ES_POWER_SHIFT), so log2 E = log2 E_int - (21 + 2e).
    int32_t offset_q16 = (int32_t)(15 + 30 - 2 * ES_POWER_SHIFT + 2 * e + ES_LOGMEL_LOG2_FLOOR) *
        ES_Q16_ONE;
    for (unsigned m = 0; m < ES_MEL_BINS; m++) {
        if (mel[m] == 0) {
            out[m] = -128;
            continue;
        }
        int32_t v = es_log2_q16(mel[m]) - offset_q16;  // Q16 of log2 E - floor
        // round(2^ES_LOGMEL_SHIFT * v / 2^16)
        int32_t q = es_asr32(v + ((int32_t)1 << (15 - ES_LOGMEL_SHIFT)), 16 - ES_LOGMEL_SHIFT);
        out[m] = (int8_t)es_clamp32(q - 128, -128, 127);
    }
}

void es_frontend_run(es_frontend_t *fe, const int16_t *samples, size_t n_hops, int8_t *features) {
    if (fe == NULL || samples == NULL || features == NULL) {
        return;
    }
    for (size_t h = 0; h < n_hops; h++) {
        es_frontend_hop(fe, samples + h * ES_HOP_SAMPLES, features + h * ES_MEL_BINS);
    }
}
