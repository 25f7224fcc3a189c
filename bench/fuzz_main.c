// A main() for the libFuzzer harnesses (bench/fuzz_model.c, bench/fuzz_adapt.c) without
// libFuzzer: runs LLVMFuzzerTestOneInput once on each file named on the command line, so a
// compiler without libFuzzer (GCC, with -fsanitize=address,undefined) can replay a corpus or
// a reproducer (tests/test_fuzz.py). Prints "inputs N" and exits 0 when every input ran.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            fprintf(stderr, "cannot open %s\n", argv[i]);
            return 2;
        }
        size_t cap = 1u << 20;
        uint8_t *buf = malloc(cap);
        size_t len = buf != NULL ? fread(buf, 1, cap, f) : 0;
        fclose(f);
        if (buf == NULL) {
            return 2;
        }
        // An exact-size copy, so ASan sees a read past the input's end.
        uint8_t *data = malloc(len > 0 ? len : 1);
        for (size_t k = 0; data != NULL && k < len; k++) {
            data[k] = buf[k];
        }
        free(buf);
        if (data == NULL) {
            return 2;
        }
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        n++;
    }
    printf("inputs %d\n", n);
    return 0;
}
