// Energy VAD on the int8 log-mel features: adaptive noise floor (fast down,
// slow up), onset threshold, hangover. See es_internal.h for the rule.
//
// Defaults (int8 feature steps are 0.376 dB of power, see es_tables.h):
// - onset 24 steps = 9.0 dB above the floor. On the "alexa" clips of
//   wake-word-benchmark the per-bin mean level of speech lies 80 to 120 steps
//   above the background, and the background itself wanders by up to about 20
//   steps, so 24 opens on speech and not on background swells.
// - min_floor -112: the floor never sits below this per-bin mean (6 steps under
//   the quietest backgrounds measured in those clips, about -106), so digital
//   silence (-128) followed by faint noise does not open the gate.
// - down_shift 1: the floor halves its distance to a quieter level every hop.
// - up_shift 7: it closes 1/128 of the distance to a louder level per hop (time
//   constant 1.28 s), so a one-second word raises it by well under half of the
//   word's height, while a lasting change of the background is followed within
//   a few seconds.
// - hangover 50 hops (500 ms): bridges the stops inside a word and keeps the
//   model running while the posterior decides after the word ends.
#include <string.h>

#include "es_internal.h"

#define ES_VAD_DEFAULT_ONSET (24)
#define ES_VAD_DEFAULT_MIN_FLOOR (-112)
#define ES_VAD_DEFAULT_HANGOVER (50)
#define ES_VAD_DEFAULT_DOWN_SHIFT (1)
#define ES_VAD_DEFAULT_UP_SHIFT (7)
#define ES_VAD_MAX_SHIFT (15)
// Hops until the frontend's window holds no zeros from before the stream start.
#define ES_VAD_PRIME_HOPS ((ES_WINDOW_SAMPLES + ES_HOP_SAMPLES - 1) / ES_HOP_SAMPLES)

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
}

int es_vad_init(es_vad_t *v, const es_vad_params_t *p) {
    if (v == NULL) {
        return ES_E_ARG;
    }
    es_vad_params_t params;
    if (p == NULL) {
        es_vad_default_params(&params);
    } else {
        params = *p;
    }
    if (params.onset < 1 || params.down_shift > ES_VAD_MAX_SHIFT ||
        params.up_shift > ES_VAD_MAX_SHIFT) {
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
    v->floor_q4 = 0;
    v->hold = 0;
    v->primed = 0;
    v->open = 0;
}

int32_t es_vad_level(const int8_t *features) {
    int32_t level = 0;
    for (unsigned i = 0; i < ES_MEL_BINS; i++) {
        level += features[i];
    }
    return level;
}

int es_vad_update(es_vad_t *v, const int8_t *features) {
    if (v == NULL || features == NULL) {
        return 0;
    }
    const int32_t level_q4 = es_vad_level(features) * 16;
    const int32_t min_q4 = (int32_t)v->p.min_floor * ES_MEL_BINS * 16;
    if (v->primed < ES_VAD_PRIME_HOPS) {
        // The first windows still hold the zeros from before the stream start:
        // the floor takes the level as it is until the window is full.
        v->floor_q4 = level_q4 > min_q4 ? level_q4 : min_q4;
        v->primed++;
    }
    if (level_q4 - v->floor_q4 >= (int32_t)v->p.onset * ES_MEL_BINS * 16) {
        v->hold = v->p.hangover;
        v->open = 1;
    } else if (v->hold > 0) {
        v->hold--;
        v->open = 1;
    } else {
        v->open = 0;
    }
    int32_t diff = level_q4 - v->floor_q4;
    v->floor_q4 += es_asr32(diff, diff < 0 ? v->p.down_shift : v->p.up_shift);
    if (v->floor_q4 < min_q4) {
        v->floor_q4 = min_q4;
    }
    return v->open;
}
