// Earshot C core: public API.
//
// Portable C99, no malloc, no mutable globals. Every object lives in memory the
// caller owns: ask for its size with es_*_mem_size(), hand over a buffer of at
// least that many bytes (any alignment; the core aligns internally to 4 bytes),
// and get back a handle that points into that buffer (or NULL on error).
//
// Data flow per 10 ms hop (see shared DESIGN.md):
//   int16 PCM (ES_HOP_SAMPLES) -> frontend -> int8 log-mel (ES_MEL_BINS)
//   -> VAD gate -> streaming int8 DS-CNN -> int8 logit -> uint8 probability
//   -> posterior smoothing -> detection.
#ifndef EARSHOT_H
#define EARSHOT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_VERSION_MAJOR (0)
#define ES_VERSION_MINOR (3)  // 2: es_norm, blob format 2; 3: ES_NORM_MINSTAT_GATE

// Frontend constants. Shared by training (through ctypes) and the device; the
// host tools assert they equal the values stored in every model blob.
#define ES_SAMPLE_RATE_HZ (16000)
#define ES_WINDOW_SAMPLES (480)  // 30 ms analysis window
#define ES_HOP_SAMPLES (160)     // 10 ms hop
#define ES_MEL_BINS (40)         // log-mel bins per hop, int8 each

// Status codes. Negative is an error.
#define ES_OK (0)
#define ES_E_ARG (-1)     // a NULL pointer, a zero length or a buffer too small
#define ES_E_BLOB (-2)    // the model blob failed validation (see the reason string)

// ---------------------------------------------------------------------------
// Frontend: int16 PCM at 16 kHz -> int8 log-mel, one vector per 10 ms hop.
typedef struct es_frontend_t es_frontend_t;

size_t es_frontend_mem_size(void);
// Returns a handle inside mem, or NULL if mem is NULL or mem_len too small.
es_frontend_t *es_frontend_init(void *mem, size_t mem_len);
// Clear the sample history (as after init).
void es_frontend_reset(es_frontend_t *fe);
// Feed n_hops * ES_HOP_SAMPLES int16 samples, write n_hops * ES_MEL_BINS int8
// features (row-major: hop, bin). Feature row i covers the 30 ms window ending
// with the last sample of hop i (history before the first sample is zeros).
void es_frontend_run(es_frontend_t *fe, const int16_t *samples, size_t n_hops, int8_t *features);

// ---------------------------------------------------------------------------
// Input normalisation (es_norm.c has the rule and its source): int8 log-mel in, int8
// level above a per-bin noise floor out (-128: at the floor; steps of 0.376 dB). The
// floor is each bin's minimum over the last 0.8 to 1.6 s (minimum statistics). A model
// whose blob has input_norm = ES_NORM_MINSTAT was trained on these features; the detector
// applies the stage itself. State: 124 bytes.
#define ES_NORM_MINSTAT (1)  // minimum statistics, 2 x 80 hops
// ES_NORM_MINSTAT, then a per-bin noise gate: each bin's level above the floor less that
// bin's noise fluctuation (es_norm.c), 0 (-128) below it: stationary noise reads as -128
// nine times in ten instead of fluctuating. Needs ES_VERSION_MINOR >= 3.
#define ES_NORM_MINSTAT_GATE (2)

typedef struct es_norm_t es_norm_t;

size_t es_norm_mem_size(void);
// mode: ES_NORM_MINSTAT or ES_NORM_MINSTAT_GATE. Returns a handle inside mem, or NULL if mem is NULL,
// mem_len too small or mode unknown.
es_norm_t *es_norm_init(void *mem, size_t mem_len, unsigned mode);
// Forget the history (as after init).
void es_norm_reset(es_norm_t *n);
// Normalise n_hops rows of ES_MEL_BINS int8 features (row-major) into out, continuing
// from the state left by the previous call; out may equal features (in place).
void es_norm_run(es_norm_t *n, const int8_t *features, size_t n_hops, int8_t *out);

// ---------------------------------------------------------------------------
// Model blob (format in es_model.h). Parsing validates every offset, size and
// the CRC-32 of the payload, and keeps pointers into the blob (no copy): the
// blob must stay valid and unchanged while the model is in use.
typedef struct es_model_t es_model_t;

typedef struct {
    uint16_t format_version;
    uint16_t n_layers;
    uint16_t input_frames;        // receptive field in hops (non-streaming window length)
    uint16_t input_bins;          // must equal ES_MEL_BINS
    uint16_t output_stride;       // hops between two model outputs when streaming
    uint8_t cutoff;               // default posterior cutoff, probability * 255
    uint8_t window;               // default posterior window, in model outputs
    uint16_t refractory;          // default outputs ignored after a detection
    uint32_t macs_per_output;     // multiply-accumulates for one streaming output
    uint32_t engine_bytes;        // es_engine_mem_size() for this model
    uint32_t payload_bytes;
    uint8_t input_norm;           // 0: the model takes the frontend's log-mel as it is;
                                  // ES_NORM_MINSTAT: es_norm runs first
    uint8_t reserved[3];
} es_model_info_t;

size_t es_model_mem_size(void);
// Returns a handle inside mem, or NULL on error; *why (if not NULL) gets a
// static string naming the problem, e.g. "bad magic", "payload CRC mismatch",
// "layer 3: weights out of bounds".
es_model_t *es_model_parse(void *mem, size_t mem_len, const uint8_t *blob, size_t blob_len,
    const char **why);
void es_model_get_info(const es_model_t *m, es_model_info_t *info);

// ---------------------------------------------------------------------------
// Streaming engine: one int8 feature vector in per hop; every output_stride
// hops (once the receptive field is filled) one int8 logit out. The output
// produced after hop n equals the non-streaming network applied to the
// input_frames feature rows ending at hop n, bit for bit.
typedef struct es_engine_t es_engine_t;

size_t es_engine_mem_size(const es_model_t *m);
es_engine_t *es_engine_init(void *mem, size_t mem_len, const es_model_t *m);
void es_engine_reset(es_engine_t *e);
// Returns 1 and writes *logit when this hop produced an output, else 0.
int es_engine_push(es_engine_t *e, const int8_t *features, int8_t *logit);
// uint8 probability (0..255) of an int8 logit, from the model's logistic table.
uint8_t es_model_probability(const es_model_t *m, int8_t logit);

// ---------------------------------------------------------------------------
// Detector: frontend + VAD gate + engine + posterior smoothing.
typedef struct es_detector_t es_detector_t;

typedef struct {
    uint8_t cutoff;       // probability * 255; mean over window >= cutoff detects
    uint8_t window;       // number of model outputs averaged (1..ES_MAX_WINDOW)
    uint16_t refractory;  // model outputs ignored after a detection
    uint8_t vad_enabled;  // 0: the model runs on every hop
    uint8_t reserved[3];
} es_detector_config_t;

#define ES_MAX_WINDOW (32)

// Per-hop flags written by es_detector_run.
#define ES_FLAG_VAD (1u << 0)      // VAD gate open at this hop
#define ES_FLAG_RAN (1u << 1)      // the model ran during this hop
#define ES_FLAG_OUTPUT (1u << 2)   // a new model output (probability) at this hop
#define ES_FLAG_DETECT (1u << 3)   // a detection fired at this hop

typedef struct {
    uint32_t hops;         // hops processed since init/reset
    uint32_t model_hops;   // hops in which the model ran
    uint32_t detections;
    uint32_t vad_open_hops;
} es_detector_stats_t;

size_t es_detector_mem_size(const es_model_t *m);
// cfg NULL: the defaults stored in the blob, VAD enabled.
es_detector_t *es_detector_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_detector_config_t *cfg);
void es_detector_reset(es_detector_t *d);
// Process n_hops * ES_HOP_SAMPLES samples. probs[i] gets the latest
// probability (0..255) after hop i, flags[i] the ES_FLAG_* bits; either may be
// NULL. Returns the number of detections in this call.
size_t es_detector_run(es_detector_t *d, const int16_t *samples, size_t n_hops, uint8_t *probs,
    uint8_t *flags);
void es_detector_get_stats(const es_detector_t *d, es_detector_stats_t *stats);

// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, as zlib.crc32).
uint32_t es_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif // EARSHOT_H
