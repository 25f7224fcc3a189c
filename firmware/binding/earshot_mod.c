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
#define mp_type_MemoryError (*(mp_obj_type_t *)(mp_load_global(MP_QSTR_MemoryError)))
#else
static const mp_obj_type_t earshot_frontend_type;
static const mp_obj_type_t earshot_model_type;
static const mp_obj_type_t earshot_engine_type;
static const mp_obj_type_t earshot_detector_type;
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
// Frontend(): streaming frontend; keeps the sample history between calls.

typedef struct _earshot_frontend_obj_t {
    mp_obj_base_t base;
    es_frontend_t *fe;
    uint8_t mem[];  // es_frontend_mem_size() bytes
} earshot_frontend_obj_t;

static mp_obj_t earshot_frontend_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 0, false);
    size_t mem_len = es_frontend_mem_size();
    earshot_frontend_obj_t *self =
        earshot_obj_alloc(sizeof(earshot_frontend_obj_t) + mem_len, type);
    self->fe = es_frontend_init(self->mem, mem_len);
    if (self->fe == NULL) {
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
    return MP_OBJ_NEW_SMALL_INT(n_hops);
}
static MP_DEFINE_CONST_FUN_OBJ_3(earshot_frontend_run_obj, earshot_frontend_run);

static mp_obj_t earshot_frontend_reset(mp_obj_t self_in) {
    earshot_frontend_obj_t *self = MP_OBJ_TO_PTR(self_in);
    es_frontend_reset(self->fe);
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
    mp_obj_t dict = mp_obj_new_dict(11);
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
};
static MP_DEFINE_CONST_DICT(earshot_module_globals, earshot_module_globals_table);

const mp_obj_module_t earshot_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&earshot_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__earshot, earshot_user_cmodule);

#endif
