// Earshot int8 neural-network kernels (reference C, the specification, and bit-exact
// optimised twins; see ES_NN_OPT).
//
// Arithmetic follows the TensorFlow Lite integer reference kernels exactly, so a model
// run here is bit-for-bit equal to the same model run by TFLite / TFLite Micro:
//   tensorflow/lite/kernels/internal/reference/integer_ops/conv.h          (ConvPerChannel)
//   tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h
//   tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h
//   tensorflow/lite/kernels/internal/common.h (MultiplyByQuantizedMultiplier,
//   SaturatingRoundingDoublingHighMul, RoundingDivideByPOT from gemmlowp).
// For each output: acc = sum(filter * (input + input_offset)) + bias (int32), then
// acc = MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c]) + output_offset,
// clamped to [act_min, act_max] (a fused ReLU is act_min = output zero point).
//
// Tensors are "time-major": a sequence of rows, each row holding the channels of one
// time step (in TFLite terms NHWC with N = 1, W = 1, H = time). Convolutions run over
// time only, 'valid' padding (no padding), with a stride over time.
//
// All int8 pointers may have any alignment; int32 pointers (bias, multiplier, shift)
// must be 4-byte aligned. Kernels write exactly out_len * out_ch bytes and nothing else.
// Parameters travel in small structs (ESP-NN style); no kernel needs scratch memory.
#ifndef ES_NN_H
#define ES_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Rounding of MultiplyByQuantizedMultiplier. 0: TFLite's default double rounding
// (SaturatingRoundingDoublingHighMul then RoundingDivideByPOT), which the PyPI
// tflite-micro runtime uses (tests/test_parity_tflm.py decides). 1: the single rounding of
// builds with TFLITE_SINGLE_ROUNDING=1 (one 64-bit multiply, round half up, shift).
#ifndef ES_NN_SINGLE_ROUNDING
#define ES_NN_SINGLE_ROUNDING (0)
#endif

// Kernel variant, chosen at compile time. 0: the reference kernels, written as TFLite's
// reference loops (the specification). 1 (default): optimised twins, bit-exact with the
// reference (same int32 accumulators, regrouped; tests/test_nn_kernels.py builds both).
// ESP-NN (IDF component espressif/esp-nn) is not dispatched to: its ESP32-S3 kernels can
// only be built and checked for bit-exactness with Espressif's toolchain, which the test
// machines lack. A firmware build that wants it must add the dispatch behind its own
// ES_NN_ESP_NN switch and run tests/test_parity_tflm.py's vectors on the board first;
// until then defining ES_NN_ESP_NN stops the build.
#ifndef ES_NN_OPT
#define ES_NN_OPT (1)
#endif
#if defined(ES_NN_ESP_NN)
#error "ES_NN_ESP_NN: ESP-NN dispatch is not implemented (see the comment above)"
#endif

// Shape and quantization of one convolution-like layer.
typedef struct {
    uint16_t in_len;        // input rows (time steps); >= kernel
    uint16_t in_ch;         // channels per input row
    uint16_t out_ch;        // channels per output row (depthwise: == in_ch)
    uint8_t kernel;         // taps over time, >= 1 (pointwise / fully connected: 1)
    uint8_t stride;         // rows between two output rows, >= 1
    uint8_t weight_bits;    // filter storage: 0 or 8 int8; 4 packed int4 (ES_NN_INT4)
    int32_t input_offset;   // minus the input zero point
    int32_t output_offset;  // the output zero point
    int32_t act_min;        // output clamp, -128 <= act_min <= act_max <= 127
    int32_t act_max;
} es_nn_params_t;

// Packed int4 filters (weight_bits 4): filter element e (the int8 layout's flat index) is
// the low nibble of byte e / 2 when e is even, the high nibble when odd, two's complement
// in [-8, 7]; ceil(n / 2) bytes for n elements. Every kernel takes them; the arithmetic is
// the int8 kernel's on the widened values (es_nn_unpack_int4 is that widening).
#define ES_NN_INT4 (4)

// Per-output-channel requantization: out_ch entries each, as TFLite's QuantizeMultiplier
// (frexp) of input_scale * filter_scale[c] / output_scale: multiplier in [2^30, 2^31) or 0,
// shift in [-31, 30] (positive: left shift).
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
} es_nn_quant_t;

// Output rows of a 'valid' convolution: (in_len - kernel) / stride + 1, or 0 when
// in_len < kernel or kernel / stride is 0.
size_t es_nn_out_len(size_t in_len, size_t kernel, size_t stride);

// TFLite's MultiplyByQuantizedMultiplier(x, multiplier, shift) (rounding per
// ES_NN_SINGLE_ROUNDING). multiplier >= 0, -31 <= shift <= 30.
int32_t es_nn_requantize(int32_t x, int32_t multiplier, int32_t shift);

// The dequantize-to-int8 path: widen n packed int4 filter elements (layout above) into
// out[0..n-1]. Code without an int4 variant runs the int8 kernel on the result.
void es_nn_unpack_int4(const uint8_t *packed, size_t n, int8_t *out);

// Standard convolution over time (TFLite CONV_2D, kernel (kernel, 1), stride (stride, 1)).
// input [in_len][in_ch], filter [out_ch][kernel][in_ch] (TFLite OHWI with W = 1),
// bias [out_ch] int32 or NULL, output [out_len][out_ch].
void es_nn_conv(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output);

// Depthwise convolution over time, depth multiplier 1 (TFLite DEPTHWISE_CONV_2D).
// input [in_len][ch], filter [kernel][ch] (TFLite 1HWC with W = 1), bias [ch] or NULL,
// output [out_len][ch]; p->out_ch must equal p->in_ch.
void es_nn_depthwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output);

// es_nn_depthwise when depthwise, else es_nn_conv, with in_len, kernel and stride taken from
// the arguments (p's are ignored): one entry for the streaming engine (in ES_NN_OPT builds
// the shared row loop itself, so the engine's hot path holds no wrapper).
void es_nn_rows(const es_nn_params_t *p, const es_nn_quant_t *q, size_t in_len,
    size_t kernel, size_t stride, int depthwise, const int8_t *input, const int8_t *filter,
    const int32_t *bias, int8_t *output);

// Pointwise (1x1) convolution: es_nn_conv with kernel 1, stride 1 over in_len rows
// (p->kernel and p->stride are ignored). filter [out_ch][in_ch].
void es_nn_pointwise(const es_nn_params_t *p, const es_nn_quant_t *q, const int8_t *input,
    const int8_t *filter, const int32_t *bias, int8_t *output);

// Fully connected (TFLite FULLY_CONNECTED, int8 weights with zero point 0): one input
// vector [in_ch], filter [out_ch][in_ch], output [out_ch] (p->in_len, kernel, stride
// ignored). A per-tensor multiplier is passed as out_ch equal entries.
void es_nn_fully_connected(const es_nn_params_t *p, const es_nn_quant_t *q,
    const int8_t *input, const int8_t *filter, const int32_t *bias, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif // ES_NN_H
