// Earshot binding: the adaptation's type, Adapter (earshot_mod.h lists the binding's files).
// Built only with MICROPY_PY_EARSHOT_ADAPT (the build files leave this file out otherwise,
// with the core's es_adapt*.c): a detection-only `_earshot` has no Adapter.

#include "earshot_mod.h"
#include "es_adapt.h"

// ---------------------------------------------------------------------------
// Adapter(model, student=None): on-device adaptation (firmware/core/es_adapt.h). Holds the
// forward scratch and activation statistics (all kept windows, positives) of `model` (the
// teacher, the model detecting), and the fixed-point trainer of the trainee (`student` if
// given, else `model`). Driven by firmware/modules/es_adapt.py.

typedef struct _earshot_adapter_obj_t {
    mp_obj_base_t base;
    mp_obj_t model;    // the teacher Model (kept alive)
    mp_obj_t student;  // the student Model or None
    const es_model_t *teacher_m;
    const es_model_t *trainee_m;
    size_t scratch_len;      // forward scratch, big enough for teacher and student
    size_t trainer_len;
    uint8_t *scratch;
    es_adapt_stats_t *stats;
    es_adapt_stats_t *pos_stats;
    uint8_t *trainer_mem;
    es_adapt_trainer_t *trainer;  // NULL until train_begin
    uint32_t *scores;
    uint8_t *keep;
    es_adapt_labeler_t labeler;  // pseudo-labels of the teacher's outputs (labeler())
    bool has_labeler;
    uint8_t mem[];
} earshot_adapter_obj_t;

static size_t earshot_max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

static mp_obj_t earshot_adapter_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 1, 2, false);
    const es_model_t *teacher = earshot_get_model(args[0])->model;
    mp_obj_t student_in = n_args > 1 ? args[1] : mp_const_none;
    const es_model_t *trainee = student_in == mp_const_none ? teacher
        : earshot_get_model(student_in)->model;
    const char *why = NULL;
    if (es_adapt_embedding_size(teacher, &why) == 0
        || es_adapt_embedding_size(trainee, &why) == 0) {
        earshot_raise_value_error(why);
    }
    size_t scratch_len = earshot_max_size(es_adapt_forward_scratch_size(teacher),
        es_adapt_forward_scratch_size(trainee));
    size_t stats_len = (es_adapt_stats_mem_size(teacher) + 3u) & ~(size_t)3u;
    size_t trainer_len = (es_adapt_trainer_mem_size(trainee) + 3u) & ~(size_t)3u;
    scratch_len = (scratch_len + 3u) & ~(size_t)3u;
    size_t channels = 0;
    size_t total = scratch_len + 2u * stats_len + trainer_len;
    earshot_adapter_obj_t *self = earshot_obj_alloc(sizeof(earshot_adapter_obj_t) + total, type);
    self->model = args[0];
    self->student = student_in;
    self->teacher_m = teacher;
    self->trainee_m = trainee;
    self->scratch_len = scratch_len;
    self->trainer_len = trainer_len;
    self->scratch = self->mem;
    self->stats = es_adapt_stats_init(self->mem + scratch_len, stats_len, teacher);
    self->pos_stats = es_adapt_stats_init(self->mem + scratch_len + stats_len, stats_len, teacher);
    self->trainer_mem = self->mem + scratch_len + 2u * stats_len;
    self->trainer = NULL;
    self->has_labeler = false;
    channels = es_adapt_stats_channels(self->stats);
    // Scores and keep mask, only needed by prune: a separate block, freed with the object.
    self->scores = earshot_malloc(channels * sizeof(uint32_t) + channels + 1u);
    self->keep = (uint8_t *)(self->scores + channels);
    return MP_OBJ_FROM_PTR(self);
}

// Adapter.logit(window) -> int: the teacher's int8 logit of one window (input_frames *
// MEL_BINS int8 bytes), no statistics.
static mp_obj_t earshot_adapter_logit(mp_obj_t self_in, mp_obj_t window_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_model_info_t info;
    es_model_get_info(self->teacher_m, &info);
    const uint8_t *w = earshot_get_in(window_in, (size_t)info.input_frames * ES_MEL_BINS, false,
        MP_ERROR_TEXT("window must be input_frames * MEL_BINS bytes"));
    int8_t logit = 0;
    es_adapt_forward(self->teacher_m, (const int8_t *)w, self->scratch, self->scratch_len, NULL,
        NULL, &logit);
    return MP_OBJ_NEW_SMALL_INT(logit);
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_adapter_logit_obj, earshot_adapter_logit);

// Adapter.keep(window, emb, positive) -> None: a kept window. Adds the teacher's statistics
// (all windows; positives also to the positives' statistics) and writes the trainee's
// embedding (embedding_size() bytes) into emb.
static mp_obj_t earshot_adapter_keep(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    es_model_info_t info;
    es_model_get_info(self->teacher_m, &info);
    const int8_t *w = (const int8_t *)earshot_get_in(args[1],
        (size_t)info.input_frames * ES_MEL_BINS, false,
        MP_ERROR_TEXT("window must be input_frames * MEL_BINS bytes"));
    uint8_t *emb = earshot_get_out(args[2], es_adapt_embedding_size(self->trainee_m, NULL), false,
        MP_ERROR_TEXT("emb must be a writable buffer"),
        MP_ERROR_TEXT("emb shorter than embedding_size()"));
    int8_t logit = 0;
    const bool same = self->trainee_m == self->teacher_m;
    es_adapt_forward(self->teacher_m, w, self->scratch, self->scratch_len, self->stats,
        same ? (int8_t *)emb : NULL, &logit);
    if (mp_obj_is_true(args[3])) {
        es_adapt_forward(self->teacher_m, w, self->scratch, self->scratch_len, self->pos_stats,
            NULL, &logit);
    }
    if (!same) {
        es_adapt_forward(self->trainee_m, w, self->scratch, self->scratch_len, NULL,
            (int8_t *)emb, &logit);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_keep_obj, 4, 4, earshot_adapter_keep);

// Adapter.embedding_size() -> int; Adapter.learning_memory() -> int (trainer bytes).
static mp_obj_t earshot_adapter_embedding_size(mp_obj_t self_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(es_adapt_embedding_size(self->trainee_m, NULL));
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_adapter_embedding_size_obj,
    earshot_adapter_embedding_size);

static mp_obj_t earshot_adapter_learning_memory(mp_obj_t self_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_int_from_uint(es_adapt_trainer_mem_size(self->trainee_m));
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_adapter_learning_memory_obj,
    earshot_adapter_learning_memory);

// Adapter.train_begin(lr_q24, pos_weight, neg_weight, distill_gain[, anchor_shift]) -> int:
// (re)load the trainee's weights into the trainer; anchor_shift (default 0: off) is the
// L2-SP pull of es_adapt_train_params_t. Returns the MACs of one sample. ValueError names
// a bad setting.
static mp_obj_t earshot_adapter_train_begin(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    es_adapt_train_params_t p = {
        .lr_q24 = (int32_t)mp_obj_get_int(args[1]),
        .pos_weight = (uint8_t)mp_obj_get_int(args[2]),
        .neg_weight = (uint8_t)mp_obj_get_int(args[3]),
        .distill_gain = (uint8_t)mp_obj_get_int(args[4]),
        .anchor_shift = n_args > 5 ? (uint8_t)mp_obj_get_int(args[5]) : 0,
    };
    const char *why = NULL;
    self->trainer = es_adapt_trainer_init(self->trainer_mem, self->trainer_len, self->trainee_m,
        &p, &why);
    if (self->trainer == NULL) {
        earshot_raise_value_error(why);
    }
    return mp_obj_new_int_from_uint(es_adapt_sample_macs(self->trainer));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_train_begin_obj, 5, 6,
    earshot_adapter_train_begin);

static void earshot_adapter_need_trainer(earshot_adapter_obj_t *self) {
    if (self->trainer == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("call train_begin first"));
    }
}

// The (embs, labels, targets) arguments args[1..3] of train() and check(): labels is n
// bytes, embs n * embedding_size() bytes, targets n int8 bytes (None allowed when
// targets_optional). Raises ValueError naming a short buffer.
typedef struct {
    size_t n;
    const int8_t *embs;
    const uint8_t *labels;
    const int8_t *targets;
} earshot_adapter_batch_t;

static earshot_adapter_batch_t earshot_adapter_batch(earshot_adapter_obj_t *self,
    const mp_obj_t *args, bool targets_optional) {
    earshot_adapter_need_trainer(self);
    mp_buffer_info_t lab;
    mp_get_buffer_raise(args[2], &lab, MP_BUFFER_READ);
    earshot_adapter_batch_t b = {.n = lab.len, .labels = (const uint8_t *)lab.buf};
    b.embs = (const int8_t *)earshot_get_in(args[1], b.n * es_adapt_embedding_size(
        self->trainee_m, NULL), true,
        MP_ERROR_TEXT("embs shorter than len(labels) * embedding_size()"));
    b.targets = targets_optional && args[3] == mp_const_none ? NULL
        : (const int8_t *)earshot_get_in(args[3], b.n, true,
        MP_ERROR_TEXT("targets shorter than labels"));
    return b;
}

// Adapter.train(embs, labels, targets, max_macs) -> int: one time slice (es_adapt_train_slice);
// returns the buffer slots stepped over. labels: n bytes; embs: n * embedding_size() bytes;
// targets: n int8 bytes or None.
static mp_obj_t earshot_adapter_train(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    earshot_adapter_batch_t b = earshot_adapter_batch(self, args, true);
    mp_int_t budget = mp_obj_get_int(args[4]);
    if (budget < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("max_macs must be >= 0"));
    }
    size_t done = es_adapt_train_slice(self->trainer, b.embs, b.labels, b.targets, b.n,
        (uint32_t)budget);
    return mp_obj_new_int_from_uint(done);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_train_obj, 5, 5, earshot_adapter_train);

// Adapter.check(embs, labels, targets, start, count) -> (n, rise, above, fires): the
// acceptance check (es_adapt_check) of the trained weights on the held-back negatives
// (label 3) among slots [start, start + count); the caller sums the slices.
static mp_obj_t earshot_adapter_check(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    earshot_adapter_batch_t b = earshot_adapter_batch(self, args, false);
    mp_int_t start = mp_obj_get_int(args[4]);
    mp_int_t count = mp_obj_get_int(args[5]);
    es_adapt_check_t acc = {0};
    if (start < 0 || count < 0 || es_adapt_check(self->trainer, b.embs, b.labels, b.targets,
        b.n, (size_t)start, (size_t)count, &acc) != ES_OK) {
        mp_raise_ValueError(MP_ERROR_TEXT("check: slots out of range"));
    }
    mp_obj_t t[4] = {
        mp_obj_new_int_from_uint(acc.n),
        mp_obj_new_int(acc.rise),
        mp_obj_new_int_from_uint(acc.above),
        mp_obj_new_int_from_uint(acc.fires),
    };
    return mp_obj_new_tuple(4, t);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_check_obj, 6, 6, earshot_adapter_check);

// Adapter.check_macs() -> int: MACs of one held-back negative in check().
static mp_obj_t earshot_adapter_check_macs(mp_obj_t self_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    earshot_adapter_need_trainer(self);
    return mp_obj_new_int_from_uint(es_adapt_check_macs(self->trainer));
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_adapter_check_macs_obj, earshot_adapter_check_macs);

// Adapter.write(out=None) -> int: the trained blob's size; with out (a writable buffer of
// at least that size) also writes the blob.
static mp_obj_t earshot_adapter_write(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    earshot_adapter_need_trainer(self);
    size_t need = 0;
    const char *why = NULL;
    es_adapt_trainer_write(self->trainer, NULL, 0, &need, &why);
    if (n_args > 1 && args[1] != mp_const_none) {
        uint8_t *out = earshot_get_out(args[1], need, false,
            MP_ERROR_TEXT("out must be a writable buffer"),
            MP_ERROR_TEXT("out smaller than the blob"));
        if (es_adapt_trainer_write(self->trainer, out, need, &need, &why) != ES_OK) {
            earshot_raise_value_error(why);
        }
    }
    return mp_obj_new_int_from_uint(need);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_write_obj, 1, 2, earshot_adapter_write);

// Adapter.prune(model, ratios_pm, out=None) -> int: prune `model` (the teacher or a model
// with its channel groups, e.g. the adapted one) with data-aware importance from the
// positives' statistics (all windows' when there are no positives) and bias correction from
// all windows'. ratios_pm: array('H') of per-mille removed per channel group. Returns the
// new blob's size; with out also writes it. ValueError names the problem.
static mp_obj_t earshot_adapter_prune(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    const es_model_t *m = earshot_get_model(args[1])->model;
    const size_t groups = es_adapt_stats_groups(self->stats);
    const uint16_t *pm = (const uint16_t *)earshot_get_in(args[2], groups * sizeof(uint16_t),
        false, MP_ERROR_TEXT("ratios_pm must be array('H') with one entry per channel group"));
    if (((uintptr_t)pm & 1u) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("ratios_pm must be 2-byte aligned"));
    }
    const es_adapt_stats_t *imp = es_adapt_stats_windows(self->pos_stats) != 0
        ? self->pos_stats : self->stats;
    if (es_adapt_stats_windows(self->stats) == 0
        || es_adapt_importance(m, imp, ES_ADAPT_DATA_AWARE, self->scores) != ES_OK) {
        mp_raise_ValueError(
            MP_ERROR_TEXT("prune: no statistics, or a model with other channel groups"));
    }
    if (es_adapt_select(self->stats, self->scores, pm, self->keep) != ES_OK) {
        mp_raise_ValueError(MP_ERROR_TEXT("prune: a ratio above 1000 per mille"));
    }
    size_t need = 0;
    const char *why = NULL;
    if (es_adapt_prune(m, self->stats, self->keep, 1, NULL, 0, &need, &why) != ES_OK) {
        earshot_raise_value_error(why);
    }
    if (n_args > 3 && args[3] != mp_const_none) {
        uint8_t *out = earshot_get_out(args[3], need, false,
            MP_ERROR_TEXT("out must be a writable buffer"),
            MP_ERROR_TEXT("out smaller than the blob"));
        if (es_adapt_prune(m, self->stats, self->keep, 1, out, need, &need, &why) != ES_OK) {
            earshot_raise_value_error(why);
        }
    }
    return mp_obj_new_int_from_uint(need);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_prune_obj, 3, 4, earshot_adapter_prune);

// Adapter.windows() -> (kept windows, positive windows) in the statistics.
static mp_obj_t earshot_adapter_windows(mp_obj_t self_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_obj_t t[2] = {
        mp_obj_new_int_from_uint(es_adapt_stats_windows(self->stats)),
        mp_obj_new_int_from_uint(es_adapt_stats_windows(self->pos_stats)),
    };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_adapter_windows_obj, earshot_adapter_windows);

// ---------------------------------------------------------------------------
// Pseudo-labels and acceptance: the rules of es_adapt_label.c (es_adapt.h), which the host
// (host_tools/earshot/adapt.py) calls through ctypes, so the board and the host decide alike.

// Adapter.labeler(pos_cutoff, neg_cutoff, neg_every, check_every, pos_share, buffer_bytes)
// -> (slots, pos_slots): (re)start the pseudo-labels of the teacher's outputs
// (es_adapt_labeler_init; distilling when the Adapter has a student), for a buffer of
// buffer_bytes (embedding_size() + 2 bytes a slot). ValueError names a bad setting.
static mp_obj_t earshot_adapter_labeler(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    es_adapt_label_params_t p = {
        .pos_cutoff = (int32_t)mp_obj_get_int(args[1]),
        .neg_cutoff = (int32_t)mp_obj_get_int(args[2]),
        .neg_every = (int32_t)mp_obj_get_int(args[3]),
        .check_every = (int32_t)mp_obj_get_int(args[4]),
        .pos_share = (int32_t)mp_obj_get_int(args[5]),
        .buffer_bytes = (int32_t)mp_obj_get_int(args[6]),
        .distill = self->student != mp_const_none,
    };
    const char *why = NULL;
    self->has_labeler = false;
    if (es_adapt_labeler_init(&self->labeler, self->teacher_m, &p,
        es_adapt_embedding_size(self->trainee_m, NULL), &why) != ES_OK) {
        earshot_raise_value_error(why);
    }
    self->has_labeler = true;
    mp_obj_t t[2] = {
        mp_obj_new_int_from_uint(self->labeler.slots),
        mp_obj_new_int_from_uint(self->labeler.pos_slots),
    };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_labeler_obj, 7, 7,
    earshot_adapter_labeler);

static es_adapt_labeler_t *earshot_adapter_get_labeler(earshot_adapter_obj_t *self) {
    if (!self->has_labeler) {
        mp_raise_ValueError(MP_ERROR_TEXT("call labeler first"));
    }
    return &self->labeler;
}

// A candidate argument: 0 (negative) or 1 (positive).
static uint8_t earshot_get_cand(mp_obj_t cand_in) {
    return (uint8_t)earshot_get_int_in(cand_in, 0, ES_ADAPT_LABEL_NEGATIVE,
        ES_ADAPT_LABEL_POSITIVE, MP_ERROR_TEXT("cand must be 0 or 1"));
}

// Adapter.candidates(probs, flags, n, hop, cand) -> int: the candidates among n hops of the
// detector's output (probs, flags: as Detector.run fills them; hop: the stream index of the
// first; es_adapt_label_candidates). cand (at least n bytes) gets 1 (positive), 0
// (negative) or 255 (none) per hop. Returns how many are candidates.
static mp_obj_t earshot_adapter_candidates(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    es_adapt_labeler_t *l = earshot_adapter_get_labeler(self);
    mp_int_t n = mp_obj_get_int(args[3]);
    mp_int_t hop = mp_obj_get_int(args[4]);
    if (n < 0 || hop < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("n and hop must be >= 0"));
    }
    const uint8_t *probs = earshot_get_in(args[1], (size_t)n, true,
        MP_ERROR_TEXT("probs shorter than n"));
    const uint8_t *flags = earshot_get_in(args[2], (size_t)n, true,
        MP_ERROR_TEXT("flags shorter than n"));
    uint8_t *cand = earshot_get_out(args[5], (size_t)n, false,
        MP_ERROR_TEXT("cand must be a writable buffer"), MP_ERROR_TEXT("cand shorter than n"));
    size_t found = es_adapt_label_candidates(l, probs, flags, (size_t)n, (uint32_t)hop, cand);
    return MP_OBJ_NEW_SMALL_INT(found);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_candidates_obj, 6, 6,
    earshot_adapter_candidates);

// Adapter.label(cand, logit=None) -> int: the label of a candidate to store
// (es_adapt_label_next: 0, 1, 2 DISTILL or 3 CHECK); with logit (the teacher's, recomputed
// on the candidate's window) first the agreement (es_adapt_label_agrees): 255 (drop the
// window) when it disagrees.
static mp_obj_t earshot_adapter_label(size_t n_args, const mp_obj_t *args) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    es_adapt_labeler_t *l = earshot_adapter_get_labeler(self);
    uint8_t cand = earshot_get_cand(args[1]);
    if (n_args > 2 && args[2] != mp_const_none) {
        int8_t logit = (int8_t)earshot_get_int_in(args[2], 0, INT8_MIN, INT8_MAX,
            MP_ERROR_TEXT("logit must be in -128..127"));
        if (!es_adapt_label_agrees(l, cand, logit)) {
            return MP_OBJ_NEW_SMALL_INT(ES_ADAPT_LABEL_EMPTY);
        }
    }
    return MP_OBJ_NEW_SMALL_INT(es_adapt_label_next(l, cand));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_adapter_label_obj, 2, 3,
    earshot_adapter_label);

// Adapter.slot(cand) -> int: the buffer slot of a window about to be stored as cand
// (es_adapt_label_slot).
static mp_obj_t earshot_adapter_slot(mp_obj_t self_in, mp_obj_t cand_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_adapt_labeler_t *l = earshot_adapter_get_labeler(self);
    return mp_obj_new_int_from_uint(es_adapt_label_slot(l, earshot_get_cand(cand_in)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_adapter_slot_obj, earshot_adapter_slot);

// Adapter.counts() -> (positives, negatives, negative candidates seen, negatives kept): the
// labeler's counters (es_adapt_labeler_t).
static mp_obj_t earshot_adapter_counts(mp_obj_t self_in) {
    earshot_adapter_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const es_adapt_labeler_t *l = earshot_adapter_get_labeler(self);
    mp_obj_t t[4] = {
        mp_obj_new_int_from_uint(l->n_pos),
        mp_obj_new_int_from_uint(l->n_neg),
        mp_obj_new_int_from_uint(l->neg_seen),
        mp_obj_new_int_from_uint(l->kept_neg),
    };
    return mp_obj_new_tuple(4, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_adapter_counts_obj, earshot_adapter_counts);

// Adapter.accepted(check) -> bool: the acceptance rule (es_adapt_accepted) of check = (n,
// rise, above, fires) (a tuple or list), the sums of check() over the buffer.
static mp_obj_t earshot_adapter_accepted(mp_obj_t self_in, mp_obj_t check_in) {
    (void)self_in;
    size_t len;
    mp_obj_t *items;
    mp_obj_get_array(check_in, &len, &items);
    if (len != 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("check must be (n, rise, above, fires)"));
    }
    es_adapt_check_t c = {
        .n = (uint32_t)mp_obj_get_int(items[0]),
        .rise = (int32_t)mp_obj_get_int(items[1]),
        .above = (uint32_t)mp_obj_get_int(items[2]),
        .fires = (uint32_t)mp_obj_get_int(items[3]),
    };
    return mp_obj_new_bool(es_adapt_accepted(&c));
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_adapter_accepted_obj, earshot_adapter_accepted);

// ---------------------------------------------------------------------------
// Registration: filled in by mpy_init (natmod) or in ROM (firmware)

#if MICROPY_ENABLE_DYNRUNTIME

mp_obj_full_type_t earshot_adapter_type;

mp_map_elem_t earshot_adapter_locals_dict_table[17];
static MP_DEFINE_CONST_DICT(earshot_adapter_locals_dict, earshot_adapter_locals_dict_table);

void earshot_adapt_natmod_init(void) {
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 0, MP_QSTR_logit, earshot_adapter_logit_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 1, MP_QSTR_keep, earshot_adapter_keep_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 2, MP_QSTR_embedding_size,
        earshot_adapter_embedding_size_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 3, MP_QSTR_learning_memory,
        earshot_adapter_learning_memory_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 4, MP_QSTR_train_begin,
        earshot_adapter_train_begin_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 5, MP_QSTR_train, earshot_adapter_train_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 6, MP_QSTR_write, earshot_adapter_write_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 7, MP_QSTR_prune, earshot_adapter_prune_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 8, MP_QSTR_windows,
        earshot_adapter_windows_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 9, MP_QSTR_check, earshot_adapter_check_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 10, MP_QSTR_check_macs,
        earshot_adapter_check_macs_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 11, MP_QSTR_labeler,
        earshot_adapter_labeler_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 12, MP_QSTR_candidates,
        earshot_adapter_candidates_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 13, MP_QSTR_label,
        earshot_adapter_label_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 14, MP_QSTR_slot, earshot_adapter_slot_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 15, MP_QSTR_counts,
        earshot_adapter_counts_obj);
    EARSHOT_METHOD(earshot_adapter_locals_dict_table, 16, MP_QSTR_accepted,
        earshot_adapter_accepted_obj);
    earshot_init_type(&earshot_adapter_type, MP_QSTR_Adapter, earshot_adapter_make_new,
        &earshot_adapter_locals_dict);
}

#else

static const mp_rom_map_elem_t earshot_adapter_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_logit), MP_ROM_PTR(&earshot_adapter_logit_obj) },
    { MP_ROM_QSTR(MP_QSTR_keep), MP_ROM_PTR(&earshot_adapter_keep_obj) },
    { MP_ROM_QSTR(MP_QSTR_embedding_size), MP_ROM_PTR(&earshot_adapter_embedding_size_obj) },
    { MP_ROM_QSTR(MP_QSTR_learning_memory), MP_ROM_PTR(&earshot_adapter_learning_memory_obj) },
    { MP_ROM_QSTR(MP_QSTR_train_begin), MP_ROM_PTR(&earshot_adapter_train_begin_obj) },
    { MP_ROM_QSTR(MP_QSTR_train), MP_ROM_PTR(&earshot_adapter_train_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&earshot_adapter_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_prune), MP_ROM_PTR(&earshot_adapter_prune_obj) },
    { MP_ROM_QSTR(MP_QSTR_windows), MP_ROM_PTR(&earshot_adapter_windows_obj) },
    { MP_ROM_QSTR(MP_QSTR_check), MP_ROM_PTR(&earshot_adapter_check_obj) },
    { MP_ROM_QSTR(MP_QSTR_check_macs), MP_ROM_PTR(&earshot_adapter_check_macs_obj) },
    { MP_ROM_QSTR(MP_QSTR_labeler), MP_ROM_PTR(&earshot_adapter_labeler_obj) },
    { MP_ROM_QSTR(MP_QSTR_candidates), MP_ROM_PTR(&earshot_adapter_candidates_obj) },
    { MP_ROM_QSTR(MP_QSTR_label), MP_ROM_PTR(&earshot_adapter_label_obj) },
    { MP_ROM_QSTR(MP_QSTR_slot), MP_ROM_PTR(&earshot_adapter_slot_obj) },
    { MP_ROM_QSTR(MP_QSTR_counts), MP_ROM_PTR(&earshot_adapter_counts_obj) },
    { MP_ROM_QSTR(MP_QSTR_accepted), MP_ROM_PTR(&earshot_adapter_accepted_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_adapter_locals_dict, earshot_adapter_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    earshot_adapter_type,
    MP_QSTR_Adapter,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_adapter_make_new,
    locals_dict, &earshot_adapter_locals_dict
    );

#endif
