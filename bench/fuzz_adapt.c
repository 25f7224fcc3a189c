// libFuzzer harness (bench/fuzz.py target c_adapt): on-device adaptation (es_adapt.h) on
// whatever model blob parses. Public API (earshot.h, es_adapt.h) only.
//
// Per input (fuzz_blob.h: the blob, then an optional trailer that shapes the windows, the
// trainer's settings and the pruning):
// - es_model_parse (as is, then with the CRC-32 fixed); models that cannot be adapted stop
//   at es_adapt_embedding_size;
// - es_adapt_forward on FUZZ_WINDOWS windows with statistics, filling a small buffer of
//   embeddings labelled positive, negative, check and distill, the logits as targets;
// - a trainer (es_adapt_trainer_init may refuse the settings or the weights) trained in
//   slices (a pass with the targets, one without), the acceptance check, and
//   es_adapt_trainer_write: the blob it writes must parse and keep the embedding size;
// - channel importance (both modes), selection and es_adapt_prune with the bias fix: the
//   pruned blob must parse;
// - the pseudo-labeller over a run of probabilities and flags from the trailer.
// Buffers end at the end of their allocation (ASan); UBSan without recovery.
#include "es_adapt.h"
#include "fuzz_blob.h"

#define FUZZ_WINDOWS (8u)

// Fills the sample buffer: forward passes on FUZZ_WINDOWS windows. Returns 0 if the model's
// window or scratch is beyond FUZZ_MAX_MEM.
static int fuzz_samples(const es_model_t *m, es_adapt_stats_t *stats, size_t emb_bytes,
    const uint8_t *tr, size_t n_tr, int8_t *emb, uint8_t *labels, int8_t *targets) {
    es_model_info_t info;
    es_model_get_info(m, &info);
    size_t win_len = (size_t)info.input_frames * ES_MEL_BINS;
    size_t scratch_len = es_adapt_forward_scratch_size(m);
    void *win_base, *scratch_base;
    int8_t *win = fuzz_alloc(win_len, &win_base);
    void *scratch = fuzz_alloc(scratch_len, &scratch_base);
    int ok = win != NULL && scratch != NULL;
    for (size_t w = 0; ok && w < FUZZ_WINDOWS; w++) {
        for (size_t k = 0; k < win_len; k++) {
            win[k] = (int8_t)(n_tr > 0 ? tr[(k + w * 977u) % n_tr] : ((k + w) * 37u) & 0xFFu);
        }
        int8_t logit = 0;
        int rc = es_adapt_forward(m, win, scratch, scratch_len, stats, emb + w * emb_bytes,
            &logit);
        FUZZ_CHECK(rc == ES_OK, "es_adapt_forward failed on an adaptable model");
        static const uint8_t kinds[4] = {ES_ADAPT_LABEL_POSITIVE, ES_ADAPT_LABEL_NEGATIVE,
                                         ES_ADAPT_LABEL_CHECK, ES_ADAPT_LABEL_DISTILL};
        labels[w] = kinds[w % 4u];
        targets[w] = logit;
    }
    FUZZ_CHECK(!ok || es_adapt_stats_windows(stats) == FUZZ_WINDOWS, "stats: windows counted");
    free(win_base);
    free(scratch_base);
    return ok;
}

// The blob written by es_adapt_trainer_write or es_adapt_prune must parse; returns its
// embedding size (0: not adaptable).
static size_t fuzz_reparse(const uint8_t *out, size_t len, const char *what) {
    uint8_t *copy = malloc(len);  // 4-byte aligned
    FUZZ_CHECK(copy != NULL, "malloc");
    memcpy(copy, out, len);
    void *base;
    size_t mem_len = es_model_mem_size();
    void *mem = fuzz_alloc(mem_len, &base);
    const char *why = NULL;
    es_model_t *m2 = es_model_parse(mem, mem_len, copy, len, &why);
    if (m2 == NULL) {
        fprintf(stderr, "%s: the written blob does not parse: %s\n", what, why);
    }
    FUZZ_CHECK(m2 != NULL, "a blob written by the adaptation code does not parse");
    size_t emb = es_adapt_embedding_size(m2, NULL);
    free(base);
    free(copy);
    return emb;
}

static void fuzz_train(const es_model_t *m, size_t emb_bytes, const uint8_t *tr, size_t n_tr,
    const int8_t *emb, const uint8_t *labels, const int8_t *targets) {
    es_adapt_train_params_t p = {1 << 20, 1, 1, 8, 0};
    if (n_tr >= 5) {
        p.lr_q24 = (int32_t)((uint32_t)tr[0] << 16 | (uint32_t)tr[1] << 8);
        p.pos_weight = tr[2] & 31u;
        p.neg_weight = (tr[2] >> 3) & 31u;
        p.distill_gain = tr[3];
        p.anchor_shift = tr[4] & 31u;
    }
    void *base;
    size_t len = es_adapt_trainer_mem_size(m);
    void *mem = fuzz_alloc(len, &base);
    es_adapt_trainer_t *t = mem == NULL ? NULL : es_adapt_trainer_init(mem, len, m, &p, NULL);
    if (t != NULL) {
        uint32_t budget = es_adapt_sample_macs(t) * 3u;
        size_t done = 0;
        for (int pass = 0; pass < 2; pass++) {
            // The second pass without targets: negatives learn by BCE, not distillation.
            const int8_t *tg = pass == 0 ? targets : NULL;
            for (size_t k = 0; k < FUZZ_WINDOWS; k += done) {
                done = es_adapt_train_slice(t, emb, labels, tg, FUZZ_WINDOWS, budget);
                FUZZ_CHECK(done >= 1, "es_adapt_train_slice made no progress");
            }
        }
        es_adapt_check_t acc;
        memset(&acc, 0, sizeof(acc));
        FUZZ_CHECK(es_adapt_check(t, emb, labels, targets, FUZZ_WINDOWS, 0, FUZZ_WINDOWS, &acc)
                == ES_OK, "es_adapt_check");
        FUZZ_CHECK(acc.n == FUZZ_WINDOWS / 4u, "es_adapt_check: CHECK samples counted");
        (void)es_adapt_accepted(&acc);
        (void)es_adapt_trainer_logit(t, emb);
        size_t need = 0;
        if (es_adapt_trainer_write(t, NULL, 0, &need, NULL) == ES_OK) {
            void *out_base;
            uint8_t *out = fuzz_alloc(need, &out_base);
            size_t got = 0;
            if (out != NULL && es_adapt_trainer_write(t, out, need, &got, NULL) == ES_OK) {
                FUZZ_CHECK(got == need, "es_adapt_trainer_write: size differs from the query");
                FUZZ_CHECK(fuzz_reparse(out, got, "trainer") == emb_bytes,
                    "the trained blob lost its embedding size");
            }
            free(out_base);
        }
    }
    free(base);
}

static void fuzz_prune(const es_model_t *m, es_adapt_stats_t *s, const uint8_t *tr,
    size_t n_tr) {
    size_t n_ch = es_adapt_stats_channels(s);
    size_t n_groups = es_adapt_stats_groups(s);
    uint32_t *scores = calloc(n_ch + 1u, sizeof(uint32_t));
    uint8_t *keep = calloc(n_ch + 1u, 1);
    uint16_t *pm = calloc(n_groups + 1u, sizeof(uint16_t));
    FUZZ_CHECK(scores != NULL && keep != NULL && pm != NULL, "calloc");
    for (size_t g = 0; g < n_groups; g++) {
        pm[g] = (uint16_t)(n_tr > 5 + g ? tr[5 + g] * 4u : 500u);  // 0..1020 per mille
    }
    int mode = n_tr > 0 && (tr[n_tr - 1] & 1u) ? ES_ADAPT_WEIGHT_NORM : ES_ADAPT_DATA_AWARE;
    FUZZ_CHECK(es_adapt_importance(m, s, mode, scores) == ES_OK, "es_adapt_importance");
    int rc = es_adapt_select(s, scores, pm, keep);
    int over = 0;
    for (size_t g = 0; g < n_groups; g++) {
        over |= pm[g] > 1000u;
    }
    FUZZ_CHECK((rc == ES_OK) == !over, "es_adapt_select: refuses exactly an entry above 1000");
    size_t need = 0;
    if (rc == ES_OK && es_adapt_prune(m, s, keep, 1, NULL, 0, &need, NULL) == ES_OK) {
        void *out_base;
        uint8_t *out = fuzz_alloc(need, &out_base);
        size_t got = 0;
        if (out != NULL && es_adapt_prune(m, s, keep, 1, out, need, &got, NULL) == ES_OK) {
            FUZZ_CHECK(got == need, "es_adapt_prune: size differs from the query");
            (void)fuzz_reparse(out, got, "prune");
        }
        free(out_base);
    }
    free(pm);
    free(keep);
    free(scores);
}

static void fuzz_label(const es_model_t *m, size_t emb_bytes, const uint8_t *tr, size_t n_tr) {
    es_adapt_label_params_t p = {200, 50, 4, 4, 4, 16384, 0};
    if (n_tr >= 12) {
        p.pos_cutoff = tr[6];
        p.neg_cutoff = tr[7];
        p.neg_every = tr[8] % 8;
        p.check_every = tr[9] % 8;
        p.pos_share = tr[10] % 8;
        p.distill = tr[11] % 3;
    }
    es_adapt_labeler_t l;
    if (es_adapt_labeler_init(&l, m, &p, emb_bytes, NULL) != ES_OK) {
        return;
    }
    enum { N = 64 };
    uint8_t probs[N], flags[N], cand[N];
    for (size_t i = 0; i < N; i++) {
        probs[i] = n_tr > 0 ? tr[(3u * i) % n_tr] : (uint8_t)(i * 9u);
        flags[i] = n_tr > 0 ? tr[(3u * i + 1u) % n_tr] : (uint8_t)(i & 7u);
    }
    uint32_t hops[2] = {0, 0xFFFFFFC0u};  // a stream's start, and near the hop counter's wrap
    for (int h = 0; h < 2; h++) {
        size_t n = es_adapt_label_candidates(&l, probs, flags, N, hops[h], cand);
        FUZZ_CHECK(n <= N, "es_adapt_label_candidates: more candidates than hops");
        for (size_t i = 0; i < N; i++) {
            if (cand[i] == ES_ADAPT_LABEL_EMPTY) {
                continue;
            }
            if (es_adapt_label_agrees(&l, cand[i], (int8_t)(probs[i] - 128))) {
                (void)es_adapt_label_next(&l, cand[i]);
                uint32_t slot = es_adapt_label_slot(&l, cand[i]);
                FUZZ_CHECK(slot < l.slots, "es_adapt_label_slot: slot beyond the buffer");
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy;
    void *model_base;
    es_model_t *m = fuzz_parse(data, size, &copy, &model_base);
    size_t emb_bytes = m == NULL ? 0 : es_adapt_embedding_size(m, NULL);
    if (emb_bytes > 0) {
        uint32_t total = fuzz_blob_total(copy, size);
        const uint8_t *tr = copy + total;
        size_t n_tr = size - total;
        void *stats_base;
        size_t stats_len = es_adapt_stats_mem_size(m);
        void *stats_mem = fuzz_alloc(stats_len, &stats_base);
        es_adapt_stats_t *s = stats_mem == NULL ? NULL
            : es_adapt_stats_init(stats_mem, stats_len, m);
        int8_t *emb = malloc(FUZZ_WINDOWS * emb_bytes);
        uint8_t labels[FUZZ_WINDOWS];
        int8_t targets[FUZZ_WINDOWS];
        if (s != NULL && emb != NULL
            && fuzz_samples(m, s, emb_bytes, tr, n_tr, emb, labels, targets)) {
            fuzz_train(m, emb_bytes, tr, n_tr, emb, labels, targets);
            fuzz_prune(m, s, tr, n_tr);
            fuzz_label(m, emb_bytes, tr, n_tr);
        }
        free(emb);
        free(stats_base);
    }
    free(model_base);
    free(copy);
    return 0;
}
