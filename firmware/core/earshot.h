// Earshot C core: public API.
//
// Portable C99, no malloc, no mutable globals. Every object lives in memory the
// caller owns: ask for its size with es_*_mem_size(), hand over a buffer of at
// least that many bytes (any alignment; the core aligns internally to 4 bytes, or
// to 8 on 64-bit hosts, where handles hold 8-byte pointers), and get back a handle
// that points into that buffer (or NULL on error).
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
#define ES_VERSION_MINOR (4)  // 2: es_norm, blob format 2; 3: ES_NORM_MINSTAT_GATE;
                              // 4: the detector's first-stage gate, es_detector_rows

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
// This header's constants and the sizes of its public structs as data, for bindings that
// cannot read C macros (CPython's ctypes: earshot.core checks its copy of each constant and
// each struct mirror against them when it loads the library).
typedef struct {
    uint16_t version_major;           // ES_VERSION_MAJOR
    uint16_t version_minor;           // ES_VERSION_MINOR
    uint32_t sample_rate_hz;          // ES_SAMPLE_RATE_HZ
    uint16_t window_samples;          // ES_WINDOW_SAMPLES
    uint16_t hop_samples;             // ES_HOP_SAMPLES
    uint16_t mel_bins;                // ES_MEL_BINS
    uint16_t max_window;              // ES_MAX_WINDOW
    uint8_t flag_vad;                 // ES_FLAG_VAD
    uint8_t flag_ran;                 // ES_FLAG_RAN
    uint8_t flag_output;              // ES_FLAG_OUTPUT
    uint8_t flag_detect;              // ES_FLAG_DETECT
    uint8_t norm_minstat;             // ES_NORM_MINSTAT
    uint8_t norm_minstat_gate;        // ES_NORM_MINSTAT_GATE
    uint16_t vad_prime_hops;          // ES_VAD_PRIME_HOPS
    // sizeof of each public struct, in bytes
    uint16_t sizeof_core_info;        // es_core_info_t (this struct)
    uint16_t sizeof_model_info;       // es_model_info_t
    uint16_t sizeof_detector_config;  // es_detector_config_t
    uint16_t sizeof_detector_stats;   // es_detector_stats_t
    uint16_t sizeof_vad_params;       // es_vad_params_t
    uint16_t sizeof_vad_state;        // es_vad_state_t
    uint8_t flag_gate;                // ES_FLAG_GATE
    uint8_t gate_preroll_hops;        // ES_GATE_PREROLL_HOPS
    uint16_t gate_decimate;           // ES_GATE_DECIMATE
} es_core_info_t;

// Writes the constants to *info (nothing if info is NULL).
void es_core_get_info(es_core_info_t *info);

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
// VAD on int8 log-mel features (es_vad.c): per-bin SNR against an adaptive per-bin noise
// floor, with a bound on narrowband energy, onset confirmation and hangover. The detector
// runs one as its gate (es_detector_config_t.vad_enabled); this API runs one on its own
// (earshot.core.vad, bench/vad.py).
//
// Per hop, for each of the ES_MEL_BINS bins b (features x[b] in int8 steps of 0.376 dB,
// 8 per octave of power, see es_tables.h; floors in Q4, 1/16 steps):
//   d[b]   = 16 * x[b] - floor[b]                     (a posteriori SNR, Q4 steps)
//   excess = sum over b of clamp(d[b], -16 * cap, 16 * cap)
//   floor[b] += d[b] / 2^down_shift  if d[b] < 0       (falls fast)
//   floor[b] += d[b] / 2^up_shift    otherwise         (rises slowly)
//   floor[b]  = max(floor[b], 16 * min_floor)
// The hop is speech-like when excess >= 16 * ES_MEL_BINS * onset, i.e. when the
// spectrum lies on average `onset` steps above the noise's spectrum, bin by bin.
// Comparing bin by bin (rather than the total level) lets speech at a low SNR in
// coloured noise count where it rises above the noise, and the clamp bounds what
// a few bins can contribute, so narrowband sounds (tones, beeps, hum) do not open
// the gate on their own. The gate opens after `confirm` consecutive speech-like
// hops (a click or a sine switched on spans at most ES_WINDOW_SAMPLES /
// ES_HOP_SAMPLES hops of broadband energy) and stays open for `hangover` hops
// after the last one; while open, every speech-like hop re-arms the hangover.
// While the frontend's first window still holds the zeros from before the stream
// (ES_VAD_PRIME_HOPS hops after init/reset), the floor is first set to the features
// (max(16 * x[b], 16 * min_floor)). The divisions round towards minus infinity.
//
// Cost: one pass over the ES_MEL_BINS bins, each a load, a scale, a subtraction,
// a clamp, an add and the floor update (a compare, a shift, an add, a max):
// about 12 integer operations per bin, plus a dozen per hop. bench/vad.py counts
// the instructions per call with callgrind. State: 100 bytes.
typedef struct {
    int8_t onset;        // mean clamped per-bin SNR (steps) of a speech-like hop, >= 1
    int8_t min_floor;    // lowest floor of a bin, steps (int8 feature value)
    uint16_t hangover;   // hops the gate stays open after the last speech-like hop
    uint8_t down_shift;  // floor time constant while falling: 2^down_shift hops, 0..15
    uint8_t up_shift;    // floor time constant while rising: 2^up_shift hops, 0..15
    uint8_t cap;         // per-bin SNR clamped to +-cap steps, 1..127
    uint8_t confirm;     // consecutive speech-like hops that open the gate, >= 1
} es_vad_params_t;

#define ES_VAD_PRIME_HOPS ((ES_WINDOW_SAMPLES + ES_HOP_SAMPLES - 1) / ES_HOP_SAMPLES)

// What the VAD holds after its last update (es_vad_get_state).
typedef struct {
    int16_t floor_q4[ES_MEL_BINS];  // per-bin noise floor, steps * 16
    int32_t excess_q4;  // sum of the clamped per-bin SNRs at the last hop, steps * 16
    uint16_t hold;      // hops left before the gate closes
    uint8_t primed;     // hops seen, up to ES_VAD_PRIME_HOPS (floor = features)
    uint8_t run;        // consecutive speech-like hops, saturating at confirm
    uint8_t speech;     // the last hop was speech-like (excess reached the onset)
    uint8_t open;       // the gate is open after the last hop
    uint8_t reserved[2];
} es_vad_state_t;

typedef struct es_vad_t es_vad_t;

// Writes the defaults (es_vad.c gives each one's reason) to *p (nothing if p is NULL).
void es_vad_default_params(es_vad_params_t *p);
size_t es_vad_mem_size(void);
// p NULL: the defaults. Returns a handle inside mem, or NULL if mem is NULL, mem_len too
// small or a parameter out of range (onset < 1, cap outside 1..127, confirm 0, a shift
// above 15).
es_vad_t *es_vad_init(void *mem, size_t mem_len, const es_vad_params_t *p);
// Back to the state after init (floors unset, gate closed), parameters kept.
void es_vad_reset(es_vad_t *v);
// Updates the floors with one hop of ES_MEL_BINS int8 features; returns 1 if the gate is
// open at this hop, else 0 (also for v or features NULL).
int es_vad_update(es_vad_t *v, const int8_t *features);
// Copies the state after the last update to *state (nothing if either is NULL).
void es_vad_get_state(const es_vad_t *v, es_vad_state_t *state);

// ---------------------------------------------------------------------------
// Posterior smoothing (es_posterior.c), microWakeWord / ESPHome micro_wake_word style: a
// ring of the last `window` uint8 probabilities; a detection fires when their sum >=
// cutoff * window (their mean reaches cutoff); then the ring is cleared and the next
// `refractory` outputs are ignored (not added to the ring). The detector runs one on the
// model's outputs; this API runs one on its own (earshot.core.posterior). State: 42 bytes.
#define ES_MAX_WINDOW (32)  // longest window, in model outputs

typedef struct es_posterior_t es_posterior_t;

size_t es_posterior_mem_size(void);
// cutoff: probability * 255, 1..255 (0 would detect on silence); window: outputs,
// 1..ES_MAX_WINDOW; refractory: outputs. Returns a handle inside mem, or NULL if mem is
// NULL, mem_len too small or a parameter out of range.
es_posterior_t *es_posterior_init(void *mem, size_t mem_len, uint8_t cutoff, uint8_t window,
    uint16_t refractory);
// Empties the ring (zeros) and ends any refractory period (as after init).
void es_posterior_clear(es_posterior_t *s);
// Adds one model output (probability * 255); returns 1 if a detection fires, else 0.
int es_posterior_push(es_posterior_t *s, uint8_t prob);

// ---------------------------------------------------------------------------
// Detector: first-stage gate + frontend + VAD + input normalisation + engine + posterior
// smoothing (es_detector.c has the rules).
//
// First stage (es_vad.c, es_gate_update): per hop, the level of the first difference of the
// samples (a +6 dB/octave high-pass: mains hum and DC count for little) against an
// adaptive floor. While it is closed (the scene is ambient) the frontend, VAD, normalisation
// and engine do not run live: the hop's samples go into a raw pre-roll of
// ES_GATE_PREROLL_HOPS hops (2 bytes per sample), and the hop that leaves it gets a feature
// row: exact every ES_GATE_DECIMATE-th time (the frontend runs on it), otherwise a copy of
// the last exact row, lowered per bin by what the normalisation's minimum would otherwise
// miss (es_detector.c); that row updates the VAD floors and the normalisation minima and
// enters the model's pre-roll, the model stays off. When the first stage opens, the frontend
// catches up on the raw pre-roll (exact rows, in order) and then runs live, until the first
// stage's hangover ends or, sooner, the VAD is closed while no hop is above the first stage's
// onset (es_detector.c, "Handshake"): a wake word whose onset falls less than
// ES_GATE_PREROLL_HOPS hops before the first stage opens is seen exactly as without the gate,
// apart from the rows older than the pre-roll in the model's window.
#define ES_GATE_PREROLL_HOPS (6)  // raw pre-roll, hops (60 ms; 1,920 bytes of int16)
#define ES_GATE_DECIMATE (8)      // the frontend runs on every 8th hop while closed

typedef struct es_detector_t es_detector_t;

typedef struct {
    uint8_t cutoff;        // probability * 255; mean over window >= cutoff detects
    uint8_t window;        // number of model outputs averaged (1..ES_MAX_WINDOW)
    uint16_t refractory;   // model outputs ignored after a detection
    uint8_t vad_enabled;   // 0: the model runs on every hop the frontend runs live
    uint8_t gate_enabled;  // 0: the frontend runs live on every hop (no first stage)
    uint8_t reserved[2];
} es_detector_config_t;


// Per-hop flags written by es_detector_run.
#define ES_FLAG_VAD (1u << 0)      // VAD gate open at this hop
#define ES_FLAG_RAN (1u << 1)      // the model ran during this hop
#define ES_FLAG_OUTPUT (1u << 2)   // a new model output (probability) at this hop
#define ES_FLAG_DETECT (1u << 3)   // a detection fired at this hop
#define ES_FLAG_GATE (1u << 4)     // the first stage is open at this hop (frontend live)

typedef struct {
    uint32_t hops;         // hops processed since init/reset
    uint32_t model_hops;   // hops in which the model ran
    uint32_t detections;
    uint32_t vad_open_hops;
    uint32_t gate_open_hops;  // hops at which the first stage was open
    uint32_t frontend_hops;   // hops the frontend computed (live, catch-up or decimated)
    uint32_t rows;            // feature rows finalised (hops through VAD and normalisation)
} es_detector_stats_t;

size_t es_detector_mem_size(const es_model_t *m);
// cfg NULL: the defaults stored in the blob, VAD and first-stage gate enabled. A cfg with
// gate_enabled 0 gives the detector of ES_VERSION_MINOR 3, bit for bit.
es_detector_t *es_detector_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_detector_config_t *cfg);
void es_detector_reset(es_detector_t *d);
// Process n_hops * ES_HOP_SAMPLES samples. probs[i] gets the latest
// probability (0..255) after hop i, flags[i] the ES_FLAG_* bits; either may be
// NULL. Returns the number of detections in this call.
size_t es_detector_run(es_detector_t *d, const int16_t *samples, size_t n_hops, uint8_t *probs,
    uint8_t *flags);
void es_detector_get_stats(const es_detector_t *d, es_detector_stats_t *stats);
// Copies the model-input feature rows (after normalisation: what the engine is or would be
// fed) of hops first .. first + n - 1 into out (n * ES_MEL_BINS int8, row-major), for a caller
// that needs the detector's features (on-device adaptation) without computing them again.
// Rows are finalised in hop order (stats.rows so far; while the first stage is closed, up
// to ES_GATE_PREROLL_HOPS hops late) and the detector keeps the last input_frames +
// output_stride - 1 of them. Returns n, or 0 if d or out is NULL or any of the rows is not
// finalised yet or no longer kept.
size_t es_detector_rows(const es_detector_t *d, uint32_t first, size_t n, int8_t *out);

// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, as zlib.crc32).
uint32_t es_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif // EARSHOT_H
