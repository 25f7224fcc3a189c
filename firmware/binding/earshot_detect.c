// Earshot binding: the detector's types (earshot_mod.h lists the binding's files).
//
// Frontend(input_norm=0)  streaming log-mel frontend (+ the model's input normalisation)
// Model(blob)             a parsed model blob, read in place
// Engine(model)           the streaming network alone, one feature row per push
// Detector(model, ...)    frontend, VAD gate, engine and posterior smoothing

#include "earshot_mod.h"

// ---------------------------------------------------------------------------
// Frontend(input_norm=0): streaming frontend; keeps the sample history between calls.
// input_norm 1 or 2 (ES_NORM_MINSTAT, ES_NORM_MINSTAT_GATE: a model's info()["input_norm"])
// also runs the core's input normalisation (es_norm, earshot.h), so run() writes what that
// model takes as input.

typedef struct _earshot_frontend_obj_t {
    mp_obj_base_t base;
    es_frontend_t *fe;
    es_norm_t *norm;  // NULL: plain log-mel
    uint8_t mem[];  // es_frontend_mem_size() (+ es_norm_mem_size()) bytes
} earshot_frontend_obj_t;

static mp_obj_t earshot_frontend_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 1, false);
    mp_int_t input_norm = n_args > 0 ? mp_obj_get_int(args[0]) : 0;
    if (input_norm < 0 || input_norm > ES_NORM_MINSTAT_GATE) {
        mp_raise_ValueError(MP_ERROR_TEXT("input_norm must be 0, 1 or 2"));
    }
    size_t fe_len = es_frontend_mem_size();
    size_t norm_len = input_norm != 0 ? es_norm_mem_size() : 0;
    earshot_frontend_obj_t *self =
        earshot_obj_alloc(sizeof(earshot_frontend_obj_t) + fe_len + norm_len, type);
    self->fe = es_frontend_init(self->mem, fe_len);
    self->norm = input_norm != 0 ?
        es_norm_init(self->mem + fe_len, norm_len, (unsigned)input_norm) : NULL;
    if (self->fe == NULL || (input_norm != 0 && self->norm == NULL)) {
        mp_raise_ValueError(MP_ERROR_TEXT("frontend init failed"));
    }
    return MP_OBJ_FROM_PTR(self);
}

// Frontend.run(samples, out) -> n_hops; see features().
static mp_obj_t earshot_frontend_run(mp_obj_t self_in, mp_obj_t samples_in, mp_obj_t out_in) {
    earshot_frontend_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t n_hops;
    const int16_t *samples = earshot_get_samples(samples_in, &n_hops);
    int8_t *out = (int8_t *)earshot_get_out(out_in, n_hops * ES_MEL_BINS, false,
        MP_ERROR_TEXT("out must be a writable buffer (bytearray)"),
        MP_ERROR_TEXT("out too small: need n_hops * MEL_BINS bytes"));
    es_frontend_run(self->fe, samples, n_hops, out);
    if (self->norm != NULL) {
        es_norm_run(self->norm, out, n_hops, out);
    }
    return MP_OBJ_NEW_SMALL_INT(n_hops);
}
static MP_DEFINE_CONST_FUN_OBJ_3(earshot_frontend_run_obj, earshot_frontend_run);

static mp_obj_t earshot_frontend_reset(mp_obj_t self_in) {
    earshot_frontend_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_frontend_reset(self->fe);
    if (self->norm != NULL) {
        es_norm_reset(self->norm);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_frontend_reset_obj, earshot_frontend_reset);

// ---------------------------------------------------------------------------
// Model(blob): a parsed model blob; ValueError(reason from es_model_parse) if it is invalid.
// blob is any buffer. A 4-byte aligned blob is read in place (no copy), so it must stay
// unchanged (and, for a bytearray, unresized) while the model is in use; a misaligned one is
// copied once.

static mp_obj_t earshot_model_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 1, 1, false);
    mp_obj_t blob = args[0];
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(blob, &bufinfo, MP_BUFFER_READ);
    if (((uintptr_t)bufinfo.buf & (sizeof(uint32_t) - 1)) != 0) {
        // The core reads the blob's int32 arrays in place, so it needs a 4-byte aligned
        // start (es_model.h). Copy a misaligned blob (e.g. a memoryview slice) into a heap
        // block, which is aligned.
        blob = mp_obj_new_bytes((const byte *)bufinfo.buf, bufinfo.len);
        mp_get_buffer_raise(blob, &bufinfo, MP_BUFFER_READ);
    }
    // An empty bytearray may have no storage (NULL): give the parser a valid address, so it
    // reports the real problem (too short) rather than a NULL blob.
    static const uint32_t no_bytes[1] = { 0 };
    const uint8_t *data = bufinfo.len > 0 ? (const uint8_t *)bufinfo.buf : (const uint8_t *)no_bytes;
    size_t mem_len = es_model_mem_size();
    earshot_model_obj_t *self = earshot_obj_alloc(sizeof(earshot_model_obj_t) + mem_len, type);
    self->blob = blob;
    const char *why = "model blob rejected";
    self->model = es_model_parse(self->mem, mem_len, data, bufinfo.len, &why);
    if (self->model == NULL) {
        earshot_raise_value_error(why);
    }
    return MP_OBJ_FROM_PTR(self);
}

// The Model behind a constructor argument (Engine, Detector, Adapter); TypeError otherwise.
earshot_model_obj_t *earshot_get_model(mp_obj_t model_in) {
    if (mp_obj_get_type(model_in) != (const mp_obj_type_t *)&earshot_model_type) {
        mp_raise_TypeError(MP_ERROR_TEXT("expected a Model"));
    }
    return MP_OBJ_TO_PTR(model_in);
}

// dict[name] = value. (Each qstr is spelled out at the call: the natmod build finds qstrs by
// scanning the source text, so they cannot be pasted together by a macro.)
static void earshot_dict_store_uint(mp_obj_t dict, qstr name, uint32_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(name), mp_obj_new_int_from_uint(value));
}

// Model.info() -> dict of es_model_info_t fields.
static mp_obj_t earshot_model_info(mp_obj_t self_in) {
    earshot_model_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_model_info_t info;
    es_model_get_info(self->model, &info);
    mp_obj_t dict = mp_obj_new_dict(12);
    earshot_dict_store_uint(dict, MP_QSTR_format_version, info.format_version);
    earshot_dict_store_uint(dict, MP_QSTR_n_layers, info.n_layers);
    earshot_dict_store_uint(dict, MP_QSTR_input_frames, info.input_frames);
    earshot_dict_store_uint(dict, MP_QSTR_input_bins, info.input_bins);
    earshot_dict_store_uint(dict, MP_QSTR_output_stride, info.output_stride);
    earshot_dict_store_uint(dict, MP_QSTR_cutoff, info.cutoff);
    earshot_dict_store_uint(dict, MP_QSTR_window, info.window);
    earshot_dict_store_uint(dict, MP_QSTR_refractory, info.refractory);
    earshot_dict_store_uint(dict, MP_QSTR_macs_per_output, info.macs_per_output);
    earshot_dict_store_uint(dict, MP_QSTR_engine_bytes, info.engine_bytes);
    earshot_dict_store_uint(dict, MP_QSTR_payload_bytes, info.payload_bytes);
    earshot_dict_store_uint(dict, MP_QSTR_input_norm, info.input_norm);
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_model_info_obj, earshot_model_info);

// Model.probability(logit) -> int: uint8 probability (0..255) of an int8 logit.
static mp_obj_t earshot_model_probability(mp_obj_t self_in, mp_obj_t logit_in) {
    earshot_model_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_int_t logit = mp_obj_get_int(logit_in);
    if (logit < INT8_MIN || logit > INT8_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("logit must be in -128..127"));
    }
    return MP_OBJ_NEW_SMALL_INT(es_model_probability(self->model, (int8_t)logit));
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_model_probability_obj, earshot_model_probability);

// ---------------------------------------------------------------------------
// Engine(model): the streaming network alone, one feature row per push.

typedef struct _earshot_engine_obj_t {
    mp_obj_base_t base;
    mp_obj_t model;  // keeps the Model (and its blob) alive
    es_engine_t *engine;
    uint8_t mem[];  // es_engine_mem_size(model) bytes
} earshot_engine_obj_t;

static mp_obj_t earshot_engine_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 1, 1, false);
    earshot_model_obj_t *model = earshot_get_model(args[0]);
    size_t mem_len = es_engine_mem_size(model->model);
    earshot_engine_obj_t *self = earshot_obj_alloc(sizeof(earshot_engine_obj_t) + mem_len, type);
    self->model = args[0];
    self->engine = es_engine_init(self->mem, mem_len, model->model);
    if (self->engine == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("engine init failed"));
    }
    return MP_OBJ_FROM_PTR(self);
}

// Engine.push(row) -> int logit or None. row: buffer of at least MEL_BINS int8 features.
static mp_obj_t earshot_engine_push(mp_obj_t self_in, mp_obj_t row_in) {
    earshot_engine_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(row_in, &bufinfo, MP_BUFFER_READ);
    if (bufinfo.len < ES_MEL_BINS) {
        mp_raise_ValueError(MP_ERROR_TEXT("feature row too short: need MEL_BINS bytes"));
    }
    int8_t logit;
    if (es_engine_push(self->engine, (const int8_t *)bufinfo.buf, &logit)) {
        return MP_OBJ_NEW_SMALL_INT(logit);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_engine_push_obj, earshot_engine_push);

static mp_obj_t earshot_engine_reset(mp_obj_t self_in) {
    earshot_engine_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_engine_reset(self->engine);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_engine_reset_obj, earshot_engine_reset);

// ---------------------------------------------------------------------------
// Detector(model, cutoff=None, window=None, refractory=None, vad=True, gate=None): first-stage
// gate, frontend, VAD gate, engine and posterior smoothing (earshot.h). None takes the
// default stored in the model blob; gate None follows vad (vad=False: every hop runs).

typedef struct _earshot_detector_obj_t {
    mp_obj_base_t base;
    mp_obj_t model;  // keeps the Model (and its blob) alive
    es_detector_t *detector;
    uint8_t mem[];  // es_detector_mem_size(model) bytes
} earshot_detector_obj_t;

static mp_obj_t earshot_detector_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_model, ARG_cutoff, ARG_window, ARG_refractory, ARG_vad, ARG_gate };
    // Not static: in a natmod, qstrs and None are only known at run time.
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_model, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL} },
        { MP_QSTR_cutoff, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_window, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_refractory, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_vad, MP_ARG_BOOL, {.u_bool = true} },
        { MP_QSTR_gate, MP_ARG_OBJ, {.u_obj = mp_const_none} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args,
        args);
    earshot_model_obj_t *model = earshot_get_model(args[ARG_model].u_obj);

    es_model_info_t info;
    es_model_get_info(model->model, &info);
    es_detector_config_t cfg = {
        .cutoff = (uint8_t)earshot_get_int_in(args[ARG_cutoff].u_obj, info.cutoff, 1, UINT8_MAX,
            MP_ERROR_TEXT("cutoff must be in 1..255 (probability * 255)")),
        .window = (uint8_t)earshot_get_int_in(args[ARG_window].u_obj, info.window, 1,
            ES_MAX_WINDOW, MP_ERROR_TEXT("window must be in 1..MAX_WINDOW")),
        .refractory = (uint16_t)earshot_get_int_in(args[ARG_refractory].u_obj, info.refractory,
            0, UINT16_MAX, MP_ERROR_TEXT("refractory must be in 0..65535")),
        .vad_enabled = args[ARG_vad].u_bool,
        .gate_enabled = args[ARG_gate].u_obj == mp_const_none ? args[ARG_vad].u_bool :
            mp_obj_is_true(args[ARG_gate].u_obj),
    };

    size_t mem_len = es_detector_mem_size(model->model);
    earshot_detector_obj_t *self =
        earshot_obj_alloc(sizeof(earshot_detector_obj_t) + mem_len, type);
    self->model = args[ARG_model].u_obj;
    self->detector = es_detector_init(self->mem, mem_len, model->model, &cfg);
    if (self->detector == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("detector init failed: bad config for this model"));
    }
    return MP_OBJ_FROM_PTR(self);
}

// Detector.run(samples, probs=None, flags=None) -> detections in this call.
// samples: int16 buffer (whole hops used); probs, flags: None or writable buffers of at least
// n_hops bytes, filled per hop with the uint8 probability and the FLAG_* bits.
static mp_obj_t earshot_detector_run(size_t n_args, const mp_obj_t *args) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    size_t n_hops;
    const int16_t *samples = earshot_get_samples(args[1], &n_hops);
    uint8_t *probs = earshot_get_out(n_args > 2 ? args[2] : mp_const_none, n_hops, true,
        MP_ERROR_TEXT("probs must be None or a writable buffer (bytearray)"),
        MP_ERROR_TEXT("probs too small: need one byte per hop"));
    uint8_t *flags = earshot_get_out(n_args > 3 ? args[3] : mp_const_none, n_hops, true,
        MP_ERROR_TEXT("flags must be None or a writable buffer (bytearray)"),
        MP_ERROR_TEXT("flags too small: need one byte per hop"));
    size_t detections = es_detector_run(self->detector, samples, n_hops, probs, flags);
    return MP_OBJ_NEW_SMALL_INT(detections);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_detector_run_obj, 2, 4, earshot_detector_run);

// Detector.stats() -> (hops, model_hops, detections, vad_open_hops) since init/reset.
static mp_obj_t earshot_detector_stats(mp_obj_t self_in) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_detector_stats_t stats;
    es_detector_get_stats(self->detector, &stats);
    mp_obj_t items[4] = {
        mp_obj_new_int_from_uint(stats.hops),
        mp_obj_new_int_from_uint(stats.model_hops),
        mp_obj_new_int_from_uint(stats.detections),
        mp_obj_new_int_from_uint(stats.vad_open_hops),
    };
    return mp_obj_new_tuple(MP_ARRAY_SIZE(items), items);
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_detector_stats_obj, earshot_detector_stats);

// Detector.gate_stats() -> (gate_open_hops, frontend_hops, rows) since init/reset: hops with
// the first stage open, hops the frontend computed, feature rows finalised (earshot.h).
static mp_obj_t earshot_detector_gate_stats(mp_obj_t self_in) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_detector_stats_t stats;
    es_detector_get_stats(self->detector, &stats);
    mp_obj_t items[3] = {
        mp_obj_new_int_from_uint(stats.gate_open_hops),
        mp_obj_new_int_from_uint(stats.frontend_hops),
        mp_obj_new_int_from_uint(stats.rows),
    };
    return mp_obj_new_tuple(MP_ARRAY_SIZE(items), items);
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_detector_gate_stats_obj, earshot_detector_gate_stats);

// Detector.rows(first, out) -> n: copies the model-input feature rows (int8, after the
// model's input normalisation) of hops first .. first + n - 1 into out, n = len(out) //
// MEL_BINS (es_detector_rows); returns n, or 0 when any of them is not finalised yet or no
// longer kept (the detector keeps input_frames + output_stride - 1 rows). Allocates nothing.
static mp_obj_t earshot_detector_rows(mp_obj_t self_in, mp_obj_t first_in, mp_obj_t out_in) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t out;
    mp_get_buffer_raise(out_in, &out, MP_BUFFER_WRITE);
    mp_int_t first = mp_obj_get_int(first_in);
    size_t n = first < 0 ? 0 : es_detector_rows(self->detector, (uint32_t)first,
        out.len / ES_MEL_BINS, (int8_t *)out.buf);
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_3(earshot_detector_rows_obj, earshot_detector_rows);

static mp_obj_t earshot_detector_reset(mp_obj_t self_in) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_detector_reset(self->detector);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_detector_reset_obj, earshot_detector_reset);

// ---------------------------------------------------------------------------
// Registration: filled in by mpy_init (natmod) or in ROM (firmware)

#if MICROPY_ENABLE_DYNRUNTIME

mp_obj_full_type_t earshot_frontend_type;
mp_obj_full_type_t earshot_model_type;
mp_obj_full_type_t earshot_engine_type;
mp_obj_full_type_t earshot_detector_type;

mp_map_elem_t earshot_frontend_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_frontend_locals_dict, earshot_frontend_locals_dict_table);
mp_map_elem_t earshot_model_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_model_locals_dict, earshot_model_locals_dict_table);
mp_map_elem_t earshot_engine_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_engine_locals_dict, earshot_engine_locals_dict_table);
mp_map_elem_t earshot_detector_locals_dict_table[5];
static MP_DEFINE_CONST_DICT(earshot_detector_locals_dict, earshot_detector_locals_dict_table);

void earshot_detect_natmod_init(void) {
    EARSHOT_METHOD(earshot_frontend_locals_dict_table, 0, MP_QSTR_run, earshot_frontend_run_obj);
    EARSHOT_METHOD(earshot_frontend_locals_dict_table, 1, MP_QSTR_reset,
        earshot_frontend_reset_obj);
    earshot_init_type(&earshot_frontend_type, MP_QSTR_Frontend, earshot_frontend_make_new,
        &earshot_frontend_locals_dict);

    EARSHOT_METHOD(earshot_model_locals_dict_table, 0, MP_QSTR_info, earshot_model_info_obj);
    EARSHOT_METHOD(earshot_model_locals_dict_table, 1, MP_QSTR_probability,
        earshot_model_probability_obj);
    earshot_init_type(&earshot_model_type, MP_QSTR_Model, earshot_model_make_new,
        &earshot_model_locals_dict);

    EARSHOT_METHOD(earshot_engine_locals_dict_table, 0, MP_QSTR_push, earshot_engine_push_obj);
    EARSHOT_METHOD(earshot_engine_locals_dict_table, 1, MP_QSTR_reset, earshot_engine_reset_obj);
    earshot_init_type(&earshot_engine_type, MP_QSTR_Engine, earshot_engine_make_new,
        &earshot_engine_locals_dict);

    EARSHOT_METHOD(earshot_detector_locals_dict_table, 0, MP_QSTR_run, earshot_detector_run_obj);
    EARSHOT_METHOD(earshot_detector_locals_dict_table, 1, MP_QSTR_stats,
        earshot_detector_stats_obj);
    EARSHOT_METHOD(earshot_detector_locals_dict_table, 2, MP_QSTR_reset,
        earshot_detector_reset_obj);
    EARSHOT_METHOD(earshot_detector_locals_dict_table, 3, MP_QSTR_gate_stats,
        earshot_detector_gate_stats_obj);
    EARSHOT_METHOD(earshot_detector_locals_dict_table, 4, MP_QSTR_rows, earshot_detector_rows_obj);
    earshot_init_type(&earshot_detector_type, MP_QSTR_Detector, earshot_detector_make_new,
        &earshot_detector_locals_dict);
}

#else

static const mp_rom_map_elem_t earshot_frontend_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&earshot_frontend_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&earshot_frontend_reset_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_frontend_locals_dict, earshot_frontend_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    earshot_frontend_type,
    MP_QSTR_Frontend,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_frontend_make_new,
    locals_dict, &earshot_frontend_locals_dict
    );

static const mp_rom_map_elem_t earshot_model_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&earshot_model_info_obj) },
    { MP_ROM_QSTR(MP_QSTR_probability), MP_ROM_PTR(&earshot_model_probability_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_model_locals_dict, earshot_model_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    earshot_model_type,
    MP_QSTR_Model,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_model_make_new,
    locals_dict, &earshot_model_locals_dict
    );

static const mp_rom_map_elem_t earshot_engine_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_push), MP_ROM_PTR(&earshot_engine_push_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&earshot_engine_reset_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_engine_locals_dict, earshot_engine_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    earshot_engine_type,
    MP_QSTR_Engine,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_engine_make_new,
    locals_dict, &earshot_engine_locals_dict
    );

static const mp_rom_map_elem_t earshot_detector_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&earshot_detector_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&earshot_detector_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_gate_stats), MP_ROM_PTR(&earshot_detector_gate_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_rows), MP_ROM_PTR(&earshot_detector_rows_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&earshot_detector_reset_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_detector_locals_dict, earshot_detector_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    earshot_detector_type,
    MP_QSTR_Detector,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_detector_make_new,
    locals_dict, &earshot_detector_locals_dict
    );

#endif
