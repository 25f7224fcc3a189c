// Earshot: MicroPython binding of the C core, module `_earshot`.
//
// One source, two builds (as MicroPython's framebuf and btree modules):
// - a dynamic native module (.mpy), built by ./Makefile with MICROPY_ENABLE_DYNRUNTIME set;
// - a user C module compiled into firmware (./micropython.mk, ./micropython.cmake).
// Only the registration at the end of this file differs between the two.
//
// Memory: each core object lives inside its MicroPython object, sized at construction from
// es_*_mem_size(). Frontend.run, Engine.push and Detector.run allocate nothing on the heap
// and return only None or small ints. A Model keeps a reference to its blob buffer (the core
// reads the blob in place), Engine and Detector keep a reference to their Model.
//
// API contract: firmware/core/earshot.h. Python-side wrapper: firmware/modules/earshot.py.

#if MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#endif
#include "py/binary.h"  // BYTEARRAY_TYPECODE

#include "earshot.h"
#include "es_adapt.h"

// Bytes in one hop of int16 samples.
#define EARSHOT_HOP_BYTES (ES_HOP_SAMPLES * sizeof(int16_t))

// The types, declared before the functions that check for them.
#if MICROPY_ENABLE_DYNRUNTIME
// A natmod cannot hold initialised writable data: mpy_init fills these in. They are not
// static: mpy_ld.py cannot relocate references to static .bss variables.
mp_obj_full_type_t earshot_frontend_type;
mp_obj_full_type_t earshot_model_type;
mp_obj_full_type_t earshot_engine_type;
mp_obj_full_type_t earshot_detector_type;
mp_obj_full_type_t earshot_adapter_type;
#define mp_type_MemoryError (*(mp_obj_type_t *)(mp_load_global(MP_QSTR_MemoryError)))
#else
static const mp_obj_type_t earshot_frontend_type;
static const mp_obj_type_t earshot_model_type;
static const mp_obj_type_t earshot_engine_type;
static const mp_obj_type_t earshot_detector_type;
static const mp_obj_type_t earshot_adapter_type;
#endif

// ---------------------------------------------------------------------------
// Helpers

// Allocate an object of n_bytes (header + core memory) and set its type. m_malloc in a natmod
// returns NULL on exhaustion instead of raising, so check in both builds.
static void *earshot_obj_alloc(size_t n_bytes, const mp_obj_type_t *type) {
    mp_obj_base_t *base = (mp_obj_base_t *)m_malloc(n_bytes);
    if (base == NULL) {
        mp_raise_msg(&mp_type_MemoryError, MP_ERROR_TEXT("earshot: out of memory"));
    }
    base->type = type;
    return base;
}

// Raise ValueError(why), where why is a static C string from the core. It is not ROM text, so
// in firmware (where MP_ERROR_TEXT may be compressed) it goes through "%s"; a natmod's messages
// are plain C strings.
static NORETURN void earshot_raise_value_error(const char *why) {
    #if MICROPY_ENABLE_DYNRUNTIME
    mp_raise_msg(&mp_type_ValueError, why);
    #else
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), why);
    #endif
}

// The int16 samples in a buffer (bytes, bytearray, memoryview, array('h')) and the number of
// whole hops (ES_HOP_SAMPLES each) they hold; trailing samples are ignored.
static const int16_t *earshot_get_samples(mp_obj_t samples_in, size_t *n_hops) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(samples_in, &bufinfo, MP_BUFFER_READ);
    switch (bufinfo.typecode) {
        case 'h':
        case 'b':
        case 'B':
        case BYTEARRAY_TYPECODE:
            break;
        default:
            mp_raise_TypeError(MP_ERROR_TEXT("samples must be int16: bytes, bytearray or array('h')"));
    }
    if (((uintptr_t)bufinfo.buf & (sizeof(int16_t) - 1)) != 0) {
        // Xtensa faults on a misaligned 16-bit load.
        mp_raise_ValueError(MP_ERROR_TEXT("samples must be 2-byte aligned"));
    }
    *n_hops = bufinfo.len / EARSHOT_HOP_BYTES;
    return (const int16_t *)bufinfo.buf;
}

// A writable buffer of at least min_len bytes, or NULL for None when none_ok.
static uint8_t *earshot_get_out(mp_obj_t out_in, size_t min_len, bool none_ok,
    mp_rom_error_text_t not_writable, mp_rom_error_text_t too_small) {
    if (none_ok && out_in == mp_const_none) {
        return NULL;
    }
    mp_buffer_info_t bufinfo;
    if (!mp_get_buffer(out_in, &bufinfo, MP_BUFFER_WRITE)) {
        mp_raise_TypeError(not_writable);
    }
    if (bufinfo.len < min_len) {
        mp_raise_ValueError(too_small);
    }
    return (uint8_t *)bufinfo.buf;
}

// ---------------------------------------------------------------------------
// crc32(data, crc=0) -> int: CRC-32 of a buffer (as zlib.crc32), continuing from crc.

static mp_obj_t earshot_crc32(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[0], &bufinfo, MP_BUFFER_READ);
    uint32_t crc = n_args > 1 ? (uint32_t)mp_obj_get_int_truncated(args[1]) : 0;
    crc = es_crc32(crc, (const uint8_t *)bufinfo.buf, bufinfo.len);
    return mp_obj_new_int_from_uint(crc);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_crc32_obj, 1, 2, earshot_crc32);

// ---------------------------------------------------------------------------
// hops(samples) -> int: whole hops (HOP_SAMPLES int16 each) in an int16 buffer, for sizing
// the outputs of features, Frontend.run and Detector.run.

static mp_obj_t earshot_hops(mp_obj_t samples_in) {
    size_t n_hops;
    earshot_get_samples(samples_in, &n_hops);
    return MP_OBJ_NEW_SMALL_INT(n_hops);
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_hops_obj, earshot_hops);

// ---------------------------------------------------------------------------
// features(samples, out) -> n_hops: stateless frontend (history before samples is zeros).
// samples: int16 buffer; out: writable buffer of at least n_hops * MEL_BINS bytes, gets int8
// log-mel rows (hop, bin). Allocates the frontend state for the duration of the call.

static mp_obj_t earshot_features(mp_obj_t samples_in, mp_obj_t out_in) {
    size_t n_hops;
    const int16_t *samples = earshot_get_samples(samples_in, &n_hops);
    int8_t *out = (int8_t *)earshot_get_out(out_in, n_hops * ES_MEL_BINS, false,
        MP_ERROR_TEXT("out must be a writable buffer (bytearray)"),
        MP_ERROR_TEXT("out too small: need n_hops * MEL_BINS bytes"));
    size_t mem_len = es_frontend_mem_size();
    uint8_t *mem = m_new(uint8_t, mem_len);
    if (mem == NULL) {
        mp_raise_msg(&mp_type_MemoryError, MP_ERROR_TEXT("earshot: out of memory"));
    }
    es_frontend_t *fe = es_frontend_init(mem, mem_len);
    if (fe != NULL) {
        es_frontend_run(fe, samples, n_hops, out);
    }
    m_del(uint8_t, mem, mem_len);
    if (fe == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("frontend init failed"));
    }
    return MP_OBJ_NEW_SMALL_INT(n_hops);
}
static MP_DEFINE_CONST_FUN_OBJ_2(earshot_features_obj, earshot_features);

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

typedef struct _earshot_model_obj_t {
    mp_obj_base_t base;
    mp_obj_t blob;  // keeps the blob alive: the core points into it
    es_model_t *model;
    uint8_t mem[];  // es_model_mem_size() bytes
} earshot_model_obj_t;

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

// The Model behind an Engine/Detector constructor argument; raises TypeError otherwise.
static earshot_model_obj_t *earshot_get_model(mp_obj_t model_in) {
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
// Detector(model, cutoff=None, window=None, refractory=None, vad=True): frontend, VAD gate,
// engine and posterior smoothing. None takes the default stored in the model blob.

typedef struct _earshot_detector_obj_t {
    mp_obj_base_t base;
    mp_obj_t model;  // keeps the Model (and its blob) alive
    es_detector_t *detector;
    uint8_t mem[];  // es_detector_mem_size(model) bytes
} earshot_detector_obj_t;

// An optional int argument in lo..hi, or dflt for None.
static mp_int_t earshot_get_int_in(mp_obj_t arg, mp_int_t dflt, mp_int_t lo, mp_int_t hi,
    mp_rom_error_text_t out_of_range) {
    if (arg == mp_const_none) {
        return dflt;
    }
    mp_int_t value = mp_obj_get_int(arg);
    if (value < lo || value > hi) {
        mp_raise_ValueError(out_of_range);
    }
    return value;
}

static mp_obj_t earshot_detector_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_model, ARG_cutoff, ARG_window, ARG_refractory, ARG_vad };
    // Not static: in a natmod, qstrs and None are only known at run time.
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_model, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL} },
        { MP_QSTR_cutoff, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_window, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_refractory, MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_vad, MP_ARG_BOOL, {.u_bool = true} },
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

static mp_obj_t earshot_detector_reset(mp_obj_t self_in) {
    earshot_detector_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_detector_reset(self->detector);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(earshot_detector_reset_obj, earshot_detector_reset);

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
    channels = es_adapt_stats_channels(self->stats);
    // Scores and keep mask, only needed by prune: a separate block, freed with the object.
    self->scores = m_malloc(channels * sizeof(uint32_t) + channels + 1u);
    if (self->scores == NULL) {
        mp_raise_msg(&mp_type_MemoryError, MP_ERROR_TEXT("earshot: out of memory"));
    }
    self->keep = (uint8_t *)(self->scores + channels);
    return MP_OBJ_FROM_PTR(self);
}

// A readable buffer of exactly n bytes (or at least, when at_least); raises ValueError.
static const uint8_t *earshot_get_in(mp_obj_t in, size_t n, bool at_least,
    mp_rom_error_text_t wrong) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(in, &bufinfo, MP_BUFFER_READ);
    if (at_least ? bufinfo.len < n : bufinfo.len != n) {
        mp_raise_ValueError(wrong);
    }
    return (const uint8_t *)bufinfo.buf;
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
// Registration

#if MICROPY_ENABLE_DYNRUNTIME

// A natmod links no libc: memset, memcpy and memmove (used by the core, and emitted by the
// compiler) go through MicroPython's function table, as in examples/natmod/framebuf.
void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}

void *memmove(void *dest, const void *src, size_t n) {
    return mp_fun_table.memmove_(dest, src, n);
}

void *memcpy(void *dest, const void *src, size_t n) {
    return mp_fun_table.memmove_(dest, src, n);
}

// Not in the function table (the core compares the blob's magic with it).
int memcmp(const void *s1, const void *s2, size_t n) {
    const uint8_t *a = s1;
    const uint8_t *b = s2;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}

mp_map_elem_t earshot_frontend_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_frontend_locals_dict, earshot_frontend_locals_dict_table);
mp_map_elem_t earshot_model_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_model_locals_dict, earshot_model_locals_dict_table);
mp_map_elem_t earshot_engine_locals_dict_table[2];
static MP_DEFINE_CONST_DICT(earshot_engine_locals_dict, earshot_engine_locals_dict_table);
mp_map_elem_t earshot_detector_locals_dict_table[3];
static MP_DEFINE_CONST_DICT(earshot_detector_locals_dict, earshot_detector_locals_dict_table);
mp_map_elem_t earshot_adapter_locals_dict_table[11];
static MP_DEFINE_CONST_DICT(earshot_adapter_locals_dict, earshot_adapter_locals_dict_table);

#define EARSHOT_METHOD(table, i, name, obj) \
    table[i] = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(name), MP_OBJ_FROM_PTR(&obj) }

static void earshot_init_type(mp_obj_full_type_t *type, qstr name, mp_make_new_fun_t make_new,
    const mp_obj_dict_t *locals_dict) {
    type->base.type = (void *)&mp_type_type;
    type->flags = MP_TYPE_FLAG_NONE;
    type->name = name;
    MP_OBJ_TYPE_SET_SLOT(type, make_new, make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(type, locals_dict, (void *)locals_dict, 1);
}

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

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
    earshot_init_type(&earshot_detector_type, MP_QSTR_Detector, earshot_detector_make_new,
        &earshot_detector_locals_dict);

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
    earshot_init_type(&earshot_adapter_type, MP_QSTR_Adapter, earshot_adapter_make_new,
        &earshot_adapter_locals_dict);

    mp_store_global(MP_QSTR_SAMPLE_RATE, MP_OBJ_NEW_SMALL_INT(ES_SAMPLE_RATE_HZ));
    mp_store_global(MP_QSTR_HOP_SAMPLES, MP_OBJ_NEW_SMALL_INT(ES_HOP_SAMPLES));
    mp_store_global(MP_QSTR_WINDOW_SAMPLES, MP_OBJ_NEW_SMALL_INT(ES_WINDOW_SAMPLES));
    mp_store_global(MP_QSTR_MEL_BINS, MP_OBJ_NEW_SMALL_INT(ES_MEL_BINS));
    mp_store_global(MP_QSTR_MAX_WINDOW, MP_OBJ_NEW_SMALL_INT(ES_MAX_WINDOW));
    mp_store_global(MP_QSTR_FLAG_VAD, MP_OBJ_NEW_SMALL_INT(ES_FLAG_VAD));
    mp_store_global(MP_QSTR_FLAG_RAN, MP_OBJ_NEW_SMALL_INT(ES_FLAG_RAN));
    mp_store_global(MP_QSTR_FLAG_OUTPUT, MP_OBJ_NEW_SMALL_INT(ES_FLAG_OUTPUT));
    mp_store_global(MP_QSTR_FLAG_DETECT, MP_OBJ_NEW_SMALL_INT(ES_FLAG_DETECT));
    mp_store_global(MP_QSTR_VERSION_MAJOR, MP_OBJ_NEW_SMALL_INT(ES_VERSION_MAJOR));
    mp_store_global(MP_QSTR_VERSION_MINOR, MP_OBJ_NEW_SMALL_INT(ES_VERSION_MINOR));
    mp_store_global(MP_QSTR_crc32, MP_OBJ_FROM_PTR(&earshot_crc32_obj));
    mp_store_global(MP_QSTR_hops, MP_OBJ_FROM_PTR(&earshot_hops_obj));
    mp_store_global(MP_QSTR_features, MP_OBJ_FROM_PTR(&earshot_features_obj));
    mp_store_global(MP_QSTR_Frontend, MP_OBJ_FROM_PTR(&earshot_frontend_type));
    mp_store_global(MP_QSTR_Model, MP_OBJ_FROM_PTR(&earshot_model_type));
    mp_store_global(MP_QSTR_Engine, MP_OBJ_FROM_PTR(&earshot_engine_type));
    mp_store_global(MP_QSTR_Detector, MP_OBJ_FROM_PTR(&earshot_detector_type));
    mp_store_global(MP_QSTR_Adapter, MP_OBJ_FROM_PTR(&earshot_adapter_type));

    MP_DYNRUNTIME_INIT_EXIT
}

#else

static const mp_rom_map_elem_t earshot_frontend_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&earshot_frontend_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&earshot_frontend_reset_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_frontend_locals_dict, earshot_frontend_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
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

static MP_DEFINE_CONST_OBJ_TYPE(
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

static MP_DEFINE_CONST_OBJ_TYPE(
    earshot_engine_type,
    MP_QSTR_Engine,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_engine_make_new,
    locals_dict, &earshot_engine_locals_dict
    );

static const mp_rom_map_elem_t earshot_detector_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&earshot_detector_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&earshot_detector_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_reset), MP_ROM_PTR(&earshot_detector_reset_obj) },
};
static MP_DEFINE_CONST_DICT(earshot_detector_locals_dict, earshot_detector_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    earshot_detector_type,
    MP_QSTR_Detector,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_detector_make_new,
    locals_dict, &earshot_detector_locals_dict
    );

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
};
static MP_DEFINE_CONST_DICT(earshot_adapter_locals_dict, earshot_adapter_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    earshot_adapter_type,
    MP_QSTR_Adapter,
    MP_TYPE_FLAG_NONE,
    make_new, earshot_adapter_make_new,
    locals_dict, &earshot_adapter_locals_dict
    );

static const mp_rom_map_elem_t earshot_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__earshot) },
    { MP_ROM_QSTR(MP_QSTR_SAMPLE_RATE), MP_ROM_INT(ES_SAMPLE_RATE_HZ) },
    { MP_ROM_QSTR(MP_QSTR_HOP_SAMPLES), MP_ROM_INT(ES_HOP_SAMPLES) },
    { MP_ROM_QSTR(MP_QSTR_WINDOW_SAMPLES), MP_ROM_INT(ES_WINDOW_SAMPLES) },
    { MP_ROM_QSTR(MP_QSTR_MEL_BINS), MP_ROM_INT(ES_MEL_BINS) },
    { MP_ROM_QSTR(MP_QSTR_MAX_WINDOW), MP_ROM_INT(ES_MAX_WINDOW) },
    { MP_ROM_QSTR(MP_QSTR_FLAG_VAD), MP_ROM_INT(ES_FLAG_VAD) },
    { MP_ROM_QSTR(MP_QSTR_FLAG_RAN), MP_ROM_INT(ES_FLAG_RAN) },
    { MP_ROM_QSTR(MP_QSTR_FLAG_OUTPUT), MP_ROM_INT(ES_FLAG_OUTPUT) },
    { MP_ROM_QSTR(MP_QSTR_FLAG_DETECT), MP_ROM_INT(ES_FLAG_DETECT) },
    { MP_ROM_QSTR(MP_QSTR_VERSION_MAJOR), MP_ROM_INT(ES_VERSION_MAJOR) },
    { MP_ROM_QSTR(MP_QSTR_VERSION_MINOR), MP_ROM_INT(ES_VERSION_MINOR) },
    { MP_ROM_QSTR(MP_QSTR_crc32), MP_ROM_PTR(&earshot_crc32_obj) },
    { MP_ROM_QSTR(MP_QSTR_hops), MP_ROM_PTR(&earshot_hops_obj) },
    { MP_ROM_QSTR(MP_QSTR_features), MP_ROM_PTR(&earshot_features_obj) },
    { MP_ROM_QSTR(MP_QSTR_Frontend), MP_ROM_PTR(&earshot_frontend_type) },
    { MP_ROM_QSTR(MP_QSTR_Model), MP_ROM_PTR(&earshot_model_type) },
    { MP_ROM_QSTR(MP_QSTR_Engine), MP_ROM_PTR(&earshot_engine_type) },
    { MP_ROM_QSTR(MP_QSTR_Detector), MP_ROM_PTR(&earshot_detector_type) },
    { MP_ROM_QSTR(MP_QSTR_Adapter), MP_ROM_PTR(&earshot_adapter_type) },
};
static MP_DEFINE_CONST_DICT(earshot_module_globals, earshot_module_globals_table);

const mp_obj_module_t earshot_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&earshot_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__earshot, earshot_user_cmodule);

#endif
