// VAD on the int8 log-mel features: per-bin SNR against an adaptive per-bin
// noise floor (fast down, slow up), clamped per bin, onset confirmation and
// hangover. The rule is in earshot.h.
//
// Defaults (int8 feature steps are 0.376 dB of power, see es_tables.h), chosen
// with bench/vad.py (seeded scenes of held-out real speech in coloured noise,
// hum, tones and beeps; none of the development positives):
// - onset 14 steps (5.3 dB mean per-bin SNR). The floor follows the lower
//   envelope of each bin, so on stationary Gaussian noise of any colour the
//   clamped per-bin SNR averages about 12 steps (the periodogram's spread does
//   not depend on the spectrum's shape); 14 is the lowest onset at which no
//   such noise opened the gate in the bench, while speech at 10 dB SNR does.
// - cap 24 steps (9 dB): a bin counts at most 24 / ES_MEL_BINS = 0.6 steps
//   towards the mean, so a narrowband sound needs 24 bins at the cap to open.
// - confirm 4 hops: one more than the ES_WINDOW_SAMPLES / ES_HOP_SAMPLES = 3
//   windows a click (or a tone switched on abruptly) can reach.
// - min_floor -112: a bin's floor never sits below this, so digital silence
//   (-128) followed by faint noise does not open the gate.
// - down_shift 1: a floor halves its distance to a quieter level every hop.
// - up_shift 7: it closes 1/128 of the distance to a louder level per hop (time
//   constant 1.28 s), so a one-second word raises it by well under half of the
//   word's height, while a lasting change of the background is followed within
//   a few seconds.
// - hangover 50 hops (500 ms): bridges the stops inside a word and keeps the
//   model running while the posterior decides after the word ends.
#include <string.h>

#include "es_internal.h"

#define ES_VAD_DEFAULT_ONSET (14)
#define ES_VAD_DEFAULT_MIN_FLOOR (-112)
#define ES_VAD_DEFAULT_HANGOVER (50)
#define ES_VAD_DEFAULT_DOWN_SHIFT (1)
#define ES_VAD_DEFAULT_UP_SHIFT (7)
#define ES_VAD_DEFAULT_CAP (24)
#define ES_VAD_DEFAULT_CONFIRM (4)
#define ES_VAD_MAX_SHIFT (15)
// Q4: floors and SNRs are kept in 1/16 feature steps.
#define ES_VAD_Q4 (16)

void es_vad_default_params(es_vad_params_t *p) {
    if (p == NULL) {
        return;
    }
    memset(p, 0, sizeof(*p));
    p->onset = ES_VAD_DEFAULT_ONSET;
    p->min_floor = ES_VAD_DEFAULT_MIN_FLOOR;
    p->hangover = ES_VAD_DEFAULT_HANGOVER;
    p->down_shift = ES_VAD_DEFAULT_DOWN_SHIFT;
    p->up_shift = ES_VAD_DEFAULT_UP_SHIFT;
    p->cap = ES_VAD_DEFAULT_CAP;
    p->confirm = ES_VAD_DEFAULT_CONFIRM;
}

size_t es_vad_mem_size(void) {
    return sizeof(es_vad_t) + ES_ALIGN_SLACK;
}

es_vad_t *es_vad_init(void *mem, size_t mem_len, const es_vad_params_t *p) {
    if (mem == NULL || mem_len < es_vad_mem_size()) {
        return NULL;
    }
    es_vad_t *v = es_align_ptr(mem);
    return es_vad_setup(v, p) == ES_OK ? v : NULL;
}

int es_vad_setup(es_vad_t *v, const es_vad_params_t *p) {
    if (v == NULL) {
        return ES_E_ARG;
    }
    es_vad_params_t params;
    if (p == NULL) {
        es_vad_default_params(&params);
    } else {
        params = *p;
    }
    if (params.onset < 1 || params.cap < 1 || params.cap > INT8_MAX || params.confirm < 1 ||
        params.down_shift > ES_VAD_MAX_SHIFT || params.up_shift > ES_VAD_MAX_SHIFT) {
        return ES_E_ARG;
    }
    memset(v, 0, sizeof(*v));
    v->p = params;
    es_vad_reset(v);
    return ES_OK;
}

void es_vad_reset(es_vad_t *v) {
    if (v == NULL) {
        return;
    }
    memset(&v->s, 0, sizeof(v->s));
}

// Onset confirmation and hangover, shared by the VAD and the first stage: `speech` hops in a
// row count up in *run (saturating at confirm); `confirm` of them open the gate, and once
// open every speech hop re-arms the hangover; the gate stays open `hangover` hops after the
// last. Returns *open.
static int es_vad_hold(int speech, uint8_t confirm, uint16_t hangover, uint8_t *run,
    uint16_t *hold, uint8_t *open) {
    if (!speech) {
        *run = 0;
    } else if (*run < confirm) {
        (*run)++;
    }
    if (*run >= confirm || (speech && *open)) {
        *hold = hangover;
        *open = 1;
    } else if (*hold > 0) {
        (*hold)--;
        *open = 1;
    } else {
        *open = 0;
    }
    return *open;
}

int es_vad_update(es_vad_t *v, const int8_t *features) {
    if (v == NULL || features == NULL) {
        return 0;
    }
    // Ranges: features * 16 in [-2048, 2032] and floors in [16 * min_floor, 2032],
    // so every d and every floor fits int16.
    const int32_t min_q4 = (int32_t)v->p.min_floor * ES_VAD_Q4;
    const int32_t cap_q4 = (int32_t)v->p.cap * ES_VAD_Q4;
    const unsigned down = v->p.down_shift;
    const unsigned up = v->p.up_shift;
    const uint32_t down_round = (1u << down) - 1u;
    int16_t *floor_q4 = v->s.floor_q4;
    // While the frontend's window still holds the zeros from before the stream start, the
    // floors first take the features as they are (in the same pass: less hot-path code).
    const int priming = v->s.primed < ES_VAD_PRIME_HOPS;
    v->s.primed += priming;
    int32_t excess = 0;
    for (unsigned b = 0; b < ES_MEL_BINS; b++) {
        const int32_t x = (int32_t)features[b] * ES_VAD_Q4;
        const int32_t f = priming ? (x > min_q4 ? x : min_q4) : floor_q4[b];
        const int32_t d = x - f;
        excess += d > cap_q4 ? cap_q4 : (d < -cap_q4 ? -cap_q4 : d);
        if (d < 0) {
            // f + floor(d / 2^down) = f - ceil(-d / 2^down), in unsigned arithmetic
            // (es_internal.h: no shifts of negative values).
            const int32_t g = f - (int32_t)(((uint32_t)-d + down_round) >> down);
            floor_q4[b] = (int16_t)(g > min_q4 ? g : min_q4);
        } else {
            floor_q4[b] = (int16_t)(f + (int32_t)((uint32_t)d >> up));
        }
    }
    v->s.excess_q4 = excess;
    v->s.speech = excess >= (int32_t)v->p.onset * ES_MEL_BINS * ES_VAD_Q4;
    return es_vad_hold(v->s.speech, v->p.confirm, v->p.hangover, &v->s.run, &v->s.hold,
        &v->s.open);
}

void es_vad_get_state(const es_vad_t *v, es_vad_state_t *state) {
    if (v != NULL && state != NULL) {
        *state = v->s;
    }
}

// ---------------------------------------------------------------------------
// First stage of the detector's gate, on raw samples (the detector runs it before anything
// else; earshot.h, "Detector"). Per hop of ES_HOP_SAMPLES samples x[n] (x[-1]: the previous
// hop's last sample, 0 after reset):
//   e     = max(sum over n of |x[n] - x[n-1]|, ES_GATE_MIN_E)
//           (the first difference is a +6 dB/octave high-pass: DC, mains hum and rumble count
//           for little; e < 160 * 65536 fits 32 bits)
//   above = e > floor + floor / 2 + floor / 8          (e rises 4.2 dB over the floor)
//   floor -= ceil((floor - e) / 2)  if e < floor      (falls fast)
//   floor += (e - floor) / 2^ES_GATE_UP_SHIFT otherwise (rises slowly)
// ES_GATE_CONFIRM hops above in a row open the stage, and it stays open ES_GATE_HANGOVER hops
// after the last one (each re-arms it while open). The first hop after reset sets the floor
// to e, and the stage starts open (hold = ES_GATE_HANGOVER), so the VAD and the
// normalisation begin on exact features. Cost: one pass over the hop (a load, a
// subtraction, an absolute value and an add per sample) and a dozen operations; state 12
// bytes (es_gate_t). Linear rather than logarithmic (as the VAD's floors): fewer
// instructions and less hot-path code, and a ratio test is a dB test.
//
// Constants, chosen with bench/pipeline.py (ambient scenes: white, pink and brown noise,
// hum, silence, babble) and tests/test_gate.py (development "alexa" clips after 10 s of
// silence or noise):
// - onset 1.625 (4.2 dB): e sums 160 absolute values, so its hop-to-hop spread in stationary
//   noise is a few percent and the floor (a lower envelope) sits a little below its mean;
//   4.2 dB leaves such noise closed while a word's first voiced or fricative hop rises
//   well above.
// - ES_GATE_CONFIRM 2 hops: one hop is what a click reaches; two cost 10 ms of the pre-roll.
// - ES_GATE_HANGOVER 50 hops: the VAD's (above): the model must run while the posterior
//   decides after the word ends.
// - ES_GATE_UP_SHIFT 7 and the fast fall (half the distance per hop): the VAD's time
//   constants (1.28 s up).
// - ES_GATE_MIN_E 512 (a mean |x[n] - x[n-1]| of 3.2 LSB, about 80 dB below full scale):
//   digital silence followed by a faint hiss does not open the stage.
#define ES_GATE_CONFIRM (2)
#define ES_GATE_UP_SHIFT (7)
#define ES_GATE_MIN_E (512u)

void es_gate_reset(es_gate_t *g) {
    memset(g, 0, sizeof(*g));
    g->hold = ES_GATE_HANGOVER;
    g->open = 1;
}

int es_gate_update(es_gate_t *g, const int16_t *samples) {
    // |x[0] - x[-1]|, then the differences inside the hop: the same sum, written without a
    // value carried from one step to the next, which lets compilers vectorise the loop.
    const int32_t d0 = samples[0] - g->last;
    uint32_t e = (uint32_t)(d0 < 0 ? -d0 : d0);
    const int16_t *x = samples + 1;
    const unsigned body = (ES_HOP_SAMPLES - 1u) & ~7u;  // a multiple of 8 first (vectorised)
    for (unsigned n = 0; n < body; n++) {
        const int32_t d = x[n] - samples[n];
        e += (uint32_t)(d < 0 ? -d : d);
    }
    for (unsigned n = body; n < ES_HOP_SAMPLES - 1u; n++) {
        const int32_t d = x[n] - samples[n];
        e += (uint32_t)(d < 0 ? -d : d);
    }
    g->last = samples[ES_HOP_SAMPLES - 1];
    e = e > ES_GATE_MIN_E ? e : ES_GATE_MIN_E;
    if (!g->primed) {
        g->floor = e;
        g->primed = 1;
    }
    const uint32_t f = g->floor;
    const int above = e > f + (f >> 1) + (f >> 3);
    g->floor = e < f ? f - ((f - e + 1u) >> 1) : f + ((e - f) >> ES_GATE_UP_SHIFT);
    return es_vad_hold(above, ES_GATE_CONFIRM, ES_GATE_HANGOVER, &g->run, &g->hold, &g->open);
}
