// The libc functions the Earshot core calls, for the natmod build only (a firmware links its
// port's libc). A natmod links no libc: memset, memcpy and memmove (called by the core, and
// emitted by the compiler) go through MicroPython's function table, as in
// examples/natmod/framebuf; memcmp is not in the table. They depend on nothing in the
// binding, so the core calls only down, never back into the binding.

#include "py/dynruntime.h"

void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}

void *memmove(void *dest, const void *src, size_t n) {
    return mp_fun_table.memmove_(dest, src, n);
}

void *memcpy(void *dest, const void *src, size_t n) {
    return mp_fun_table.memmove_(dest, src, n);
}

int memcmp(const void *s1, const void *s2, size_t n) {
    const uint8_t *a = s1;
    const uint8_t *b = s2;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}
