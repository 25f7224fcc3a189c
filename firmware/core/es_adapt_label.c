// Earshot on-device adaptation: the decision rules the board and the host share, so that
// neither spells them (API in es_adapt.h, "Acceptance and pseudo-labels"):
// - which detector outputs become pseudo-labelled buffer samples, with which label, in which
//   slot (es_adapt_labeler_t);
// - whether a trained model is accepted (es_adapt_accepted).
#include "es_adapt_internal.h"

int es_adapt_accepted(const es_adapt_check_t *c) {
    if (c == NULL) {
        return 0;
    }
    return c->n == 0 || (c->rise <= 0 && c->fires == 0);
}

// Set *why (if not NULL) and return ES_E_ARG, or ES_OK for a NULL reason.
static int es_adapt_label_fail(const char **why, const char *reason) {
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? ES_OK : ES_E_ARG;
}

int es_adapt_labeler_init(es_adapt_labeler_t *l, const es_model_t *m,
    const es_adapt_label_params_t *p, size_t emb_bytes, const char **why) {
    if (l == NULL || m == NULL || p == NULL) {
        return es_adapt_label_fail(why, "labeler: NULL argument");
    }
    if (p->pos_cutoff < 0 || p->pos_cutoff > 255 || p->neg_cutoff < 0 || p->neg_cutoff > 255) {
        return es_adapt_label_fail(why, "pos_cutoff and neg_cutoff must be 0..255");
    }
    if (p->neg_every < 1) {
        return es_adapt_label_fail(why, "neg_every must be >= 1");
    }
    if (p->check_every < 0) {
        return es_adapt_label_fail(why, "check_every must be >= 0");
    }
    if (p->pos_share < 1) {
        return es_adapt_label_fail(why, "pos_share must be >= 1");
    }
    if (p->distill < 0 || p->distill > 1) {
        return es_adapt_label_fail(why, "distill must be 0 or 1");
    }
    const uint32_t slots = p->buffer_bytes < 0 ? 0u
        : (uint32_t)p->buffer_bytes / (uint32_t)(emb_bytes + 2u);
    if (slots < 2u) {
        return es_adapt_label_fail(why, "buffer_bytes holds fewer than 2 embeddings");
    }
    const uint32_t pos_slots = slots / (uint32_t)p->pos_share;
    if (pos_slots >= slots) {
        return es_adapt_label_fail(why, "pos_share leaves no buffer slot for negatives");
    }
    l->m = m;
    l->p = *p;
    l->frames = m->info.input_frames;
    l->slots = slots;
    l->pos_slots = pos_slots > 0u ? pos_slots : 1u;
    l->neg_seen = 0;
    l->kept_neg = 0;
    l->n_pos = 0;
    l->n_neg = 0;
    return es_adapt_label_fail(why, NULL);
}

size_t es_adapt_label_candidates(es_adapt_labeler_t *l, const uint8_t *probs,
    const uint8_t *flags, size_t n, uint32_t hop, uint8_t *cand) {
    if (l == NULL || probs == NULL || flags == NULL || cand == NULL) {
        return 0;
    }
    const uint8_t want = ES_FLAG_OUTPUT | ES_FLAG_VAD;
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const int32_t p = probs[i];
        cand[i] = ES_ADAPT_LABEL_EMPTY;
        if ((flags[i] & want) != want || hop + (uint32_t)i + 1u < l->frames) {
            continue;
        }
        if (p >= l->p.pos_cutoff) {
            cand[i] = ES_ADAPT_LABEL_POSITIVE;
        } else if (p <= l->p.neg_cutoff) {
            l->neg_seen++;
            if ((l->neg_seen - 1u) % (uint32_t)l->p.neg_every != 0u) {
                continue;
            }
            cand[i] = ES_ADAPT_LABEL_NEGATIVE;
        } else {
            continue;
        }
        found++;
    }
    return found;
}

int es_adapt_label_agrees(const es_adapt_labeler_t *l, uint8_t cand, int8_t logit) {
    if (l == NULL) {
        return 0;
    }
    const int32_t q = es_model_probability(l->m, logit);
    return cand != ES_ADAPT_LABEL_NEGATIVE ? q >= l->p.pos_cutoff : q <= l->p.neg_cutoff;
}

uint8_t es_adapt_label_next(es_adapt_labeler_t *l, uint8_t cand) {
    uint8_t label = cand != ES_ADAPT_LABEL_NEGATIVE
        ? ES_ADAPT_LABEL_POSITIVE : ES_ADAPT_LABEL_NEGATIVE;
    if (l == NULL) {
        return label;
    }
    if (label == ES_ADAPT_LABEL_NEGATIVE) {
        l->kept_neg++;
        if (l->p.check_every != 0 && l->kept_neg % (uint32_t)l->p.check_every == 0u) {
            label = ES_ADAPT_LABEL_CHECK;
        }
    }
    return l->p.distill ? ES_ADAPT_LABEL_DISTILL : label;
}

uint32_t es_adapt_label_slot(es_adapt_labeler_t *l, uint8_t cand) {
    if (l == NULL || l->slots == 0u) {
        return 0;
    }
    if (cand != ES_ADAPT_LABEL_NEGATIVE) {
        return l->n_pos++ % l->pos_slots;
    }
    return l->pos_slots + l->n_neg++ % (l->slots - l->pos_slots);
}
