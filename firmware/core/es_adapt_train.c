// Earshot on-device adaptation: the fixed-point trainer of the head and the acceptance
// check (API and design notes in es_adapt.h, "2. Weight adaptation" and "4. Acceptance
// check").
#include <string.h>

#include "es_adapt_internal.h"

// Largest trainer learning rate (1.0 in Q24) and sample weight, bounding the int64 products.
#define ES_ADAPT_LR_MAX (1 << 24)
#define ES_ADAPT_WEIGHT_MAX (16u)
#define ES_ADAPT_ANCHOR_SHIFT_MAX (30u)
// Step of the sample shuffle (a prime; reduced and made coprime to n at run time).
#define ES_ADAPT_SHUFFLE_STEP (7919u)

size_t es_adapt_trainer_mem_size(const es_model_t *m) {
    const size_t in = es_adapt_embedding_size(m, NULL);
    if (in == 0) {
        return 0;
    }
    const size_t out = m->layers[m->info.n_layers - 2u].out_ch;
    return ES_ALIGN_SLACK + ES_ALIGN4(sizeof(es_adapt_trainer_t)) + 4u * (in * out + 3u * out);
}

es_adapt_trainer_t *es_adapt_trainer_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_adapt_train_params_t *params, const char **why) {
    const char *reason = NULL;
    es_adapt_trainer_t *t = NULL;
    if (mem == NULL || m == NULL || params == NULL) {
        reason = "trainer: NULL argument";
    } else if (es_adapt_embedding_size(m, &reason) == 0) {
        // reason set
    } else if (mem_len < es_adapt_trainer_mem_size(m)) {
        reason = "trainer: buffer smaller than es_adapt_trainer_mem_size()";
    } else if (params->lr_q24 < 0 || params->lr_q24 > ES_ADAPT_LR_MAX) {
        reason = "trainer: learning rate outside [0, 1]";
    } else if (params->distill_gain < 1) {
        reason = "trainer: distill_gain must be >= 1";
    } else if (params->anchor_shift > ES_ADAPT_ANCHOR_SHIFT_MAX) {
        reason = "trainer: anchor_shift must be 0..30";
    } else if (params->pos_weight < 1 || params->pos_weight > ES_ADAPT_WEIGHT_MAX
               || params->neg_weight < 1 || params->neg_weight > ES_ADAPT_WEIGHT_MAX) {
        reason = "trainer: sample weights outside 1..16";
    } else {
        t = es_align_ptr(mem);
        memset(t, 0, sizeof(*t));
        const uint16_t n = m->info.n_layers;
        const es_model_layer_t *pw = &m->layers[n - 2u];
        const es_model_layer_t *fc = &m->layers[n - 1u];
        t->m = m;
        t->p = *params;
        t->in = pw->in_ch;
        t->out = pw->out_ch;
        t->in_offset = pw->input_offset;
        t->lo = (pw->act_min - pw->output_offset) * 65536;
        t->hi = (pw->act_max - pw->output_offset) * 65536;
        t->w = (int32_t *)(void *)((uint8_t *)t + ES_ALIGN4(sizeof(es_adapt_trainer_t)));
        t->b = t->w + (size_t)t->in * t->out;
        t->v = t->b + t->out;
        t->h = t->v + t->out;
        int ok = 1;
        int64_t q = 0;
        for (uint16_t c = 0; c < t->out && ok; c++) {
            for (uint16_t i = 0; i < t->in && ok; i++) {
                ok = es_adapt_to_q16(pw->weights[(size_t)c * t->in + i], pw->multiplier[c],
                    pw->shift[c], &q) && q <= ES_ADAPT_W_MAX && q >= -ES_ADAPT_W_MAX;
                t->w[(size_t)c * t->in + i] = (int32_t)q;
            }
            ok = ok && es_adapt_to_q16(pw->bias[c], pw->multiplier[c], pw->shift[c], &q)
                && q <= ES_ADAPT_B_MAX && q >= -ES_ADAPT_B_MAX;
            t->b[c] = (int32_t)q;
            ok = ok && es_adapt_to_q16(fc->weights[c], fc->multiplier[0], fc->shift[0], &q)
                && q <= ES_ADAPT_W_MAX && q >= -ES_ADAPT_W_MAX;
            t->v[c] = (int32_t)q;
        }
        ok = ok && es_adapt_to_q16(fc->bias[0], fc->multiplier[0], fc->shift[0], &q)
            && q <= ES_ADAPT_B_MAX && q >= -ES_ADAPT_B_MAX;
        t->fc_b = (int32_t)q;
        if (!ok) {
            reason = "trainer: weights too large for the Q16 master copy";
            t = NULL;
        }
    }
    if (why != NULL) {
        *why = reason;
    }
    return t;
}

uint32_t es_adapt_sample_macs(const es_adapt_trainer_t *t) {
    if (t == NULL) {
        return 0;
    }
    const uint32_t params = (uint32_t)t->in * t->out + 2u * t->out + 1u;
    return 2u * t->in * t->out + 3u * t->out + 1u + (t->p.anchor_shift ? params : 0u);
}

uint32_t es_adapt_trainer_samples(const es_adapt_trainer_t *t) {
    return t == NULL ? 0 : t->seen;
}

// Forward: t->h gets the clamped pointwise outputs (Q16 quanta above the zero point);
// returns the logit in Q16 quanta (before the FC output zero point).
static int64_t es_adapt_head(const es_adapt_trainer_t *t, const int8_t *emb) {
    int64_t z = (int64_t)t->fc_b * 65536;
    for (uint16_t c = 0; c < t->out; c++) {
        const int32_t *w = t->w + (size_t)c * t->in;
        int64_t y = t->b[c];
        for (uint16_t i = 0; i < t->in; i++) {
            y += (int64_t)w[i] * ((int32_t)emb[i] + t->in_offset);
        }
        y = y < t->lo ? t->lo : (y > t->hi ? t->hi : y);
        t->h[c] = (int32_t)y;
        z += (int64_t)t->v[c] * y;
    }
    return es_adapt_rshift_round(z, 16);
}

static int8_t es_adapt_logit_of(const es_adapt_trainer_t *t, int64_t z_q16) {
    const es_model_layer_t *fc = &t->m->layers[t->m->info.n_layers - 1u];
    int64_t q = es_adapt_rshift_round(z_q16, 16) + fc->output_offset;
    q = q < fc->act_min ? fc->act_min : (q > fc->act_max ? fc->act_max : q);
    return (int8_t)q;
}

int8_t es_adapt_trainer_logit(const es_adapt_trainer_t *t, const int8_t *emb) {
    if (t == NULL || emb == NULL) {
        return 0;
    }
    return es_adapt_logit_of(t, es_adapt_head(t, emb));
}

uint32_t es_adapt_check_macs(const es_adapt_trainer_t *t) {
    return t == NULL ? 0 : (uint32_t)t->in * t->out + 2u * t->out + 1u;
}

int es_adapt_check(const es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, size_t start, size_t count, es_adapt_check_t *acc) {
    if (t == NULL || emb == NULL || labels == NULL || targets == NULL || acc == NULL
        || start > n || count > n - start) {
        return ES_E_ARG;
    }
    const uint8_t cutoff = t->m->info.cutoff;
    for (size_t i = start; i < start + count; i++) {
        if (labels[i] != ES_ADAPT_LABEL_CHECK) {
            continue;
        }
        const int8_t logit = es_adapt_logit_of(t,
            es_adapt_head(t, emb + i * t->in));
        const int32_t d = (int32_t)logit - targets[i];
        acc->n++;
        acc->rise += d;
        acc->above += d > 0;
        acc->fires += es_model_probability(t->m, logit) >= cutoff;
    }
    return ES_OK;
}

// L2-SP pull of every trainable parameter towards the model's own (params->anchor_shift):
// the starting values are recomputed from the int8 model as es_adapt_trainer_init did.
static void es_adapt_anchor(es_adapt_trainer_t *t) {
    const uint16_t n = t->m->info.n_layers;
    const es_model_layer_t *pw = &t->m->layers[n - 2u];
    const es_model_layer_t *fc = &t->m->layers[n - 1u];
    const unsigned k = t->p.anchor_shift;
    int64_t q = 0;
    for (uint16_t c = 0; c < t->out; c++) {
        int32_t *w = t->w + (size_t)c * t->in;
        for (uint16_t i = 0; i < t->in; i++) {
            (void)es_adapt_to_q16(pw->weights[(size_t)c * t->in + i], pw->multiplier[c],
                pw->shift[c], &q);  // succeeded in es_adapt_trainer_init
            w[i] += (int32_t)es_adapt_rshift_round(q - w[i], k);
        }
        (void)es_adapt_to_q16(pw->bias[c], pw->multiplier[c], pw->shift[c], &q);
        t->b[c] += (int32_t)es_adapt_rshift_round(q - t->b[c], k);
        (void)es_adapt_to_q16(fc->weights[c], fc->multiplier[0], fc->shift[0], &q);
        t->v[c] += (int32_t)es_adapt_rshift_round(q - t->v[c], k);
    }
    (void)es_adapt_to_q16(fc->bias[0], fc->multiplier[0], fc->shift[0], &q);
    t->fc_b += (int32_t)es_adapt_rshift_round(q - t->fc_b, k);
}

// One SGD step of the head on emb with lr * dL/dlogit = lre (Q24).
static void es_adapt_step(es_adapt_trainer_t *t, const int8_t *emb, int64_t lre) {
    for (uint16_t c = 0; c < t->out; c++) {
        const int32_t h = t->h[c];
        // The gradient reaches the pointwise layer only where its output is not clamped.
        if (h > t->lo && h < t->hi) {
            const int64_t g32 = es_adapt_rshift_round(lre * t->v[c], 16);  // Q32
            int32_t *w = t->w + (size_t)c * t->in;
            for (uint16_t i = 0; i < t->in; i++) {
                const int64_t x = (int32_t)emb[i] + t->in_offset;
                const int64_t nw = w[i] - es_adapt_rshift_round(g32 * x, 16);
                w[i] = (int32_t)es_adapt_clamp64(nw, ES_ADAPT_W_MAX);
            }
            const int64_t nb = t->b[c] - es_adapt_rshift_round(g32, 16);
            t->b[c] = (int32_t)es_adapt_clamp64(nb, ES_ADAPT_B_MAX);
        }
        const int64_t nv = t->v[c] - es_adapt_rshift_round(lre * h, 32);
        t->v[c] = (int32_t)es_adapt_clamp64(nv, ES_ADAPT_W_MAX);
    }
    const int64_t nb = t->fc_b - es_adapt_rshift_round(lre, 16);
    t->fc_b = (int32_t)es_adapt_clamp64(nb, ES_ADAPT_B_MAX);
}

static void es_adapt_train_one(es_adapt_trainer_t *t, const int8_t *emb, uint8_t label,
    const int8_t *target) {
    const int8_t logit = es_adapt_logit_of(t, es_adapt_head(t, emb));
    const int32_t p = es_model_probability(t->m, logit);
    int32_t e;
    if (label == ES_ADAPT_LABEL_DISTILL) {
        // Match the teacher's logit from both sides (an L2 loss on logits).
        const int32_t d = target == NULL ? 0 : (int32_t)logit - *target;
        e = es_clamp32(d * t->p.distill_gain, -255, 255) * t->p.neg_weight;
    } else if (label == ES_ADAPT_LABEL_POSITIVE) {
        // dL/dlogit = p - 1 (BCE on a sigmoid), in 1/255 ~ 1/256 steps, weighted.
        e = (p - 255) * t->p.pos_weight;
    } else if (target != NULL) {
        // Hinge on the teacher's logit: a negative may not score above it.
        const int32_t over = (int32_t)logit - *target;
        e = over > 0 ? es_clamp32(over * t->p.distill_gain, 0, 255) * t->p.neg_weight : 0;
    } else {
        e = p * t->p.neg_weight;  // dL/dlogit = p - 0
    }
    const int64_t lre = (int64_t)t->p.lr_q24 * e;  // lr * e, Q24 (|.| < 2^36)
    if (lre != 0) {
        es_adapt_step(t, emb, lre);
    }
    if (t->p.anchor_shift) {
        es_adapt_anchor(t);
    }
}

static uint32_t es_adapt_gcd(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

size_t es_adapt_train_slice(es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, uint32_t max_macs) {
    if (t == NULL || emb == NULL || labels == NULL || n == 0 || n > 0xFFFFu) {
        return 0;
    }
    const uint32_t cost = es_adapt_sample_macs(t);
    uint32_t step = ES_ADAPT_SHUFFLE_STEP % (uint32_t)n;
    step = step == 0 ? 1u : step;
    while (es_adapt_gcd(step, (uint32_t)n) != 1u) {
        step++;
    }
    size_t done = 0;
    size_t skipped = 0;  // consecutive empty slots: a buffer of only empty slots ends the slice
    while (max_macs >= cost && skipped < n) {
        const uint32_t k = t->seen;
        const uint32_t idx = ((k % (uint32_t)n) * step + k / (uint32_t)n) % (uint32_t)n;
        t->seen++;
        done++;
        if (labels[idx] > ES_ADAPT_LABEL_DISTILL) {
            skipped++;
            continue;
        }
        skipped = 0;
        es_adapt_train_one(t, emb + (size_t)idx * t->in, labels[idx],
            targets == NULL ? NULL : targets + idx);
        max_macs -= cost;
    }
    return done;
}
