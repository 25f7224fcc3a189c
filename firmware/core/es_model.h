// Earshot model blob: format and the parsed model (internal to the core; the public API
// is es_model_parse / es_model_get_info / es_model_probability in earshot.h).
//
// Blob format, versions 1 to 3 (2 = 1 plus a non-zero input_norm; 3 = 2 plus packed int4
// weights, any input_norm. A writer uses the lowest version that holds the model (1 when
// input_norm is 0 and every layer is int8), so that an older reader refuses only the blobs
// it would get wrong). Little-endian, every array 4-byte aligned relative to the blob
// start, and the blob itself must start at a 4-byte aligned address (read in place: the
// int32 arrays are used through pointers into the blob). Written by
// host_tools/earshot/model/blob.py; its describe() parses it in Python.
//
// Header (ES_BLOB_HEADER_BYTES = 48 bytes):
//   off size field
//     0    4 magic "ESMB"
//     4    2 format_version: 1; 2 when input_norm != 0; 3 when a layer has int4 weights
//     6    2 header_bytes (>= 48; readers skip fields they do not know)
//     8    4 crc32: es_crc32 (= zlib.crc32) of bytes [12, total_bytes)
//    12    4 total_bytes: the blob's length (a longer buffer is allowed; the rest is ignored)
//    16    4 sample_rate_hz   must equal ES_SAMPLE_RATE_HZ
//    20    2 window_samples   must equal ES_WINDOW_SAMPLES
//    22    2 hop_samples      must equal ES_HOP_SAMPLES
//    24    2 mel_bins         must equal ES_MEL_BINS
//    26    2 input_frames     receptive field in hops; must equal the layer table's
//    28    2 output_stride    hops per output; must equal the product of the layer strides
//    30    2 n_layers         1..ES_MODEL_MAX_LAYERS
//    32    1 cutoff           default posterior cutoff, probability * 255 (1..255)
//    33    1 window           default posterior window in outputs (1..ES_MAX_WINDOW)
//    34    2 refractory       default outputs ignored after a detection
//    36    4 layers_offset    offset of the layer table (n_layers records)
//    40    4 logistic_offset  offset of the 256-byte logistic table
//    44    2 layer_bytes      bytes per layer record (>= 48; readers skip the rest)
//    46    1 input_norm     0: the model's input is the frontend's log-mel;
//                           ES_NORM_MINSTAT (1): the log-mel goes through es_norm
//                           (earshot.h) first (the detector applies it)
//    47    1 reserved, 0
// Layer record (ES_BLOB_LAYER_BYTES = 48 bytes):
//     0    1 type: ES_LAYER_CONV, ES_LAYER_DEPTHWISE or ES_LAYER_FC
//     1    1 kernel (taps over time, >= 1; FC: 1)
//     2    1 stride (>= 1; FC: 1)
//     3    1 weight_bits: version 3: 0 or 8 int8 weights, ES_NN_INT4 (4) packed int4
//                      (es_nn.h: two per byte, low nibble first; per-channel scales are in
//                      multiplier / shift as for int8). Contiguous taps (conv, pointwise,
//                      FC) run two per byte; depthwise widens each tap to int8 as it reads
//                      it. Versions 1-2: reserved, ignored (int8).
//     4    2 in_ch          (layer 0: mel_bins; layer i: out_ch of layer i - 1)
//     6    2 out_ch         (depthwise: == in_ch; last layer: 1)
//     8    2 input_zp  int16, -128..127 (layer 0: 0, the features are the input;
//                           layer i: output_zp of layer i - 1)
//    10    2 output_zp int16, -128..127
//    12    2 act_min   int16 } output clamp, -128 <= act_min <= act_max <= 127
//    14    2 act_max   int16 }
//    16    8 weights: offset, bytes (u32 each). int8 (bytes = elements) or packed int4
//                     (bytes = ceil(elements / 2)). conv [out][kernel][in],
//                     depthwise [kernel][ch], FC [out][in]
//    24    8 bias: offset, bytes. int32 [out_ch], or bytes 0 for no bias
//    32    8 multiplier: offset, bytes. int32 [out_ch], each 0 or in [2^30, 2^31)
//    40    8 shift: offset, bytes. int32 [out_ch], each in [-31, 30]
// The layers form a chain: the last FC-or-conv output row (time length 1 at the end of the
// receptive field) is the int8 logit. The FC input is the previous layer's one output row.
// Logistic table: 256 uint8, entry i = round(255 * sigmoid(scale * (q - zp))) for the int8
// logit q = i - 128 (scale, zp: the logit's quantization).
#ifndef ES_MODEL_H
#define ES_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "earshot.h"

#define ES_BLOB_MAGIC "ESMB"
#define ES_BLOB_VERSION (3)      // newest version read and written
#define ES_BLOB_VERSION_NORM (2)  // first version with input_norm
#define ES_BLOB_VERSION_INT4 (3)  // first version with int4 weights (any input_norm)
#define ES_BLOB_HEADER_BYTES (48)
#define ES_BLOB_LAYER_BYTES (48)
#define ES_BLOB_CRC_START (12)
#define ES_MODEL_MAX_LAYERS (24)
// Largest kernel * in_ch of one output: with |filter| <= 128 and |input - zp| <= 255 the
// sum of products stays below 2^30 (32768 * 128 * 255 = 1,069,547,520) ...
#define ES_MODEL_MAX_TAPS (32768u)
// ... and with |bias| <= 2^30 the int32 accumulator cannot overflow. The parser refuses
// larger biases; es_adapt writes none.
#define ES_MODEL_MAX_BIAS (1073741824L)

#define ES_LAYER_CONV (1)
#define ES_LAYER_DEPTHWISE (2)
#define ES_LAYER_FC (3)

// One layer, validated, with pointers into the blob.
typedef struct {
    uint8_t type;
    uint8_t kernel;
    uint8_t stride;
    uint8_t weight_bits;  // 8: int8 weights; ES_NN_INT4: packed int4 (es_nn.h)
    uint16_t in_ch;
    uint16_t out_ch;
    int32_t input_offset;   // -input_zp
    int32_t output_offset;  // output_zp
    int32_t act_min;
    int32_t act_max;
    const int8_t *weights;
    const int32_t *bias;  // NULL: no bias
    const int32_t *multiplier;
    const int32_t *shift;
} es_model_layer_t;

struct es_model_t {
    es_model_info_t info;
    const uint8_t *logistic;  // 256 entries, indexed by logit + 128
    es_model_layer_t layers[ES_MODEL_MAX_LAYERS];
};

#endif // ES_MODEL_H
