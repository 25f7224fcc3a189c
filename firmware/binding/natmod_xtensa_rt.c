// Integer runtime helpers for the Xtensa natmod builds (ARCH=xtensa, xtensawin only).
//
// GCC calls libgcc for operations the core has no instruction for: on the ESP8266's LX106
// (ARCH=xtensa) 32-bit division and remainder, and on both cores 64-bit multiply and shifts.
// A MicroPython 1.23 natmod links no libgcc (mpy_ld.py takes only our objects), and Debian's
// xtensa-lx106-elf libgcc.a lacks the division helpers anyway (firmware gets them from the
// ESP8266 mask ROM). So the natmod carries its own: plain shift-and-subtract / shift-and-add
// versions, with the libgcc names and semantics (C99 truncating division; results for a
// zero divisor are unspecified, as in libgcc: the core never divides by zero).
//
// Written without `/`, `%`, 64-bit `*` or variable 64-bit shifts, so GCC cannot turn them
// back into calls to themselves. Not part of the firmware (user C module) build.

#include <stdint.h>

// Prototypes (GCC knows these names as builtins' library calls; -Wall wants declarations).
uint32_t __udivsi3(uint32_t n, uint32_t d);
uint32_t __umodsi3(uint32_t n, uint32_t d);
int32_t __divsi3(int32_t n, int32_t d);
int32_t __modsi3(int32_t n, int32_t d);
uint64_t __muldi3(uint64_t a, uint64_t b);
uint64_t __ashldi3(uint64_t a, int shift);
uint64_t __lshrdi3(uint64_t a, int shift);
int64_t __ashrdi3(int64_t a, int shift);

// Unsigned n / d and n % d by restoring division, one quotient bit per step.
static uint32_t es_rt_udivmod(uint32_t n, uint32_t d, uint32_t *rem) {
    uint32_t q = 0;
    uint32_t r = 0;
    for (int bit = 31; bit >= 0; bit--) {
        r = (r << 1) | ((n >> bit) & 1u);
        if (r >= d) {
            r -= d;
            q |= 1u << bit;
        }
    }
    *rem = r;
    return q;
}

uint32_t __udivsi3(uint32_t n, uint32_t d) {
    uint32_t r;
    return es_rt_udivmod(n, d, &r);
}

uint32_t __umodsi3(uint32_t n, uint32_t d) {
    uint32_t r;
    es_rt_udivmod(n, d, &r);
    return r;
}

// Magnitude of a 32-bit signed value as unsigned (correct for INT32_MIN).
static uint32_t es_rt_abs(int32_t x) {
    return x < 0 ? 0u - (uint32_t)x : (uint32_t)x;
}

int32_t __divsi3(int32_t n, int32_t d) {
    uint32_t r;
    uint32_t q = es_rt_udivmod(es_rt_abs(n), es_rt_abs(d), &r);
    return (int32_t)(((n < 0) != (d < 0)) ? 0u - q : q);
}

int32_t __modsi3(int32_t n, int32_t d) {
    uint32_t r;
    es_rt_udivmod(es_rt_abs(n), es_rt_abs(d), &r);
    return (int32_t)(n < 0 ? 0u - r : r);  // the remainder takes the dividend's sign
}

// 32 x 32 -> 64 unsigned product from 16-bit halves (only 32-bit multiplies).
static uint64_t es_rt_umul32x32(uint32_t a, uint32_t b) {
    uint32_t a0 = a & 0xFFFFu;
    uint32_t a1 = a >> 16;
    uint32_t b0 = b & 0xFFFFu;
    uint32_t b1 = b >> 16;
    uint32_t p00 = a0 * b0;
    uint32_t p01 = a0 * b1;
    uint32_t p10 = a1 * b0;
    uint32_t p11 = a1 * b1;
    // Middle column: (p00 >> 16) + low halves of the cross products, carries into the top.
    uint32_t mid = (p00 >> 16) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    uint32_t lo = (mid << 16) | (p00 & 0xFFFFu);
    uint32_t hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    return ((uint64_t)hi << 32) | lo;
}

// Low 64 bits of a * b (the same for signed and unsigned operands).
uint64_t __muldi3(uint64_t a, uint64_t b) {
    uint32_t al = (uint32_t)a;
    uint32_t ah = (uint32_t)(a >> 32);
    uint32_t bl = (uint32_t)b;
    uint32_t bh = (uint32_t)(b >> 32);
    uint64_t p = es_rt_umul32x32(al, bl);
    uint32_t hi = (uint32_t)(p >> 32) + al * bh + ah * bl;
    return ((uint64_t)hi << 32) | (uint32_t)p;
}

// 64-bit shifts by 0..63 (larger counts are undefined in C, as for libgcc).
uint64_t __ashldi3(uint64_t a, int shift) {
    uint32_t lo = (uint32_t)a;
    uint32_t hi = (uint32_t)(a >> 32);
    if (shift == 0) {
        return a;
    }
    if (shift >= 32) {
        hi = lo << (shift - 32);
        lo = 0;
    } else {
        hi = (hi << shift) | (lo >> (32 - shift));
        lo <<= shift;
    }
    return ((uint64_t)hi << 32) | lo;
}

uint64_t __lshrdi3(uint64_t a, int shift) {
    uint32_t lo = (uint32_t)a;
    uint32_t hi = (uint32_t)(a >> 32);
    if (shift == 0) {
        return a;
    }
    if (shift >= 32) {
        lo = hi >> (shift - 32);
        hi = 0;
    } else {
        lo = (lo >> shift) | (hi << (32 - shift));
        hi >>= shift;
    }
    return ((uint64_t)hi << 32) | lo;
}

int64_t __ashrdi3(int64_t a, int shift) {
    uint32_t lo = (uint32_t)a;
    int32_t hi = (int32_t)((uint64_t)a >> 32);
    if (shift == 0) {
        return a;
    }
    if (shift >= 32) {
        lo = (uint32_t)(hi >> (shift - 32));  // arithmetic shift (GCC: sign-propagating)
        hi = hi < 0 ? -1 : 0;
    } else {
        lo = (lo >> shift) | ((uint32_t)hi << (32 - shift));
        hi >>= shift;
    }
    return (int64_t)(((uint64_t)(uint32_t)hi << 32) | lo);
}
