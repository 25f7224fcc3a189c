// Posterior smoothing of the model's uint8 probabilities, as microWakeWord /
// ESPHome micro_wake_word do it (esphome/components/micro_wake_word): a ring of
// the last `window` probabilities, a detection when their sum reaches
// cutoff * window (the mean reaches cutoff), then the ring is cleared and the
// next `refractory` outputs are ignored. Integer only: the sum is at most
// 255 * ES_MAX_WINDOW = 8160, compared exactly with cutoff * window.
#include <string.h>

#include "es_internal.h"

size_t es_posterior_mem_size(void) {
    return sizeof(es_posterior_t) + ES_ALIGN_SLACK;
}

es_posterior_t *es_posterior_init(void *mem, size_t mem_len, uint8_t cutoff, uint8_t window,
    uint16_t refractory) {
    if (mem == NULL || mem_len < es_posterior_mem_size()) {
        return NULL;
    }
    es_posterior_t *s = es_align_ptr(mem);
    return es_posterior_setup(s, cutoff, window, refractory) == ES_OK ? s : NULL;
}

int es_posterior_setup(es_posterior_t *s, uint8_t cutoff, uint8_t window, uint16_t refractory) {
    if (s == NULL || cutoff == 0 || window == 0 || window > ES_MAX_WINDOW) {
        return ES_E_ARG;
    }
    memset(s, 0, sizeof(*s));
    s->cutoff = cutoff;
    s->window = window;
    s->refractory = refractory;
    return ES_OK;
}

void es_posterior_clear(es_posterior_t *s) {
    if (s == NULL) {
        return;
    }
    memset(s->ring, 0, sizeof(s->ring));
    s->sum = 0;
    s->pos = 0;
    s->ignore = 0;
}

int es_posterior_push(es_posterior_t *s, uint8_t prob) {
    if (s == NULL || s->window == 0) {
        return 0;
    }
    if (s->ignore > 0) {
        s->ignore--;
        return 0;
    }
    s->sum = (uint16_t)(s->sum - s->ring[s->pos] + prob);
    s->ring[s->pos] = prob;
    s->pos = (uint8_t)(s->pos + 1u == s->window ? 0u : s->pos + 1u);
    if ((uint32_t)s->sum >= (uint32_t)s->cutoff * s->window) {
        es_posterior_clear(s);
        s->ignore = s->refractory;
        return 1;
    }
    return 0;
}
