// CRC-32 as in IEEE 802.3 / zlib.crc32: reflected polynomial 0xEDB88320, initial
// value and final XOR 0xFFFFFFFF (the caller passes the previous CRC, 0 to start).
// Table-free, four bits per step with a 16-entry nibble table computed from the
// polynomial (Sarwate 1988 with 4-bit slices): small flash, no RAM.
#include "earshot.h"

#define ES_CRC32_POLY (0xEDB88320u)

// CRC of one nibble value i (0..15) shifted through 4 steps of the bitwise
// algorithm; a constant expression, so the table lives in flash.
#define ES_CRC_STEP(c) (((c) >> 1) ^ (((c) & 1u) ? ES_CRC32_POLY : 0u))
#define ES_CRC_NIBBLE(i) ES_CRC_STEP(ES_CRC_STEP(ES_CRC_STEP(ES_CRC_STEP((uint32_t)(i)))))

static const uint32_t es_crc32_nibble[16] = {
    ES_CRC_NIBBLE(0), ES_CRC_NIBBLE(1), ES_CRC_NIBBLE(2), ES_CRC_NIBBLE(3),
    ES_CRC_NIBBLE(4), ES_CRC_NIBBLE(5), ES_CRC_NIBBLE(6), ES_CRC_NIBBLE(7),
    ES_CRC_NIBBLE(8), ES_CRC_NIBBLE(9), ES_CRC_NIBBLE(10), ES_CRC_NIBBLE(11),
    ES_CRC_NIBBLE(12), ES_CRC_NIBBLE(13), ES_CRC_NIBBLE(14), ES_CRC_NIBBLE(15),
};

uint32_t es_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    if (data == NULL) {
        return crc;
    }
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ es_crc32_nibble[crc & 15u];
        crc = (crc >> 4) ^ es_crc32_nibble[crc & 15u];
    }
    return ~crc;
}
