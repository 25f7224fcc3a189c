// Earshot: MicroPython binding of the C core, module `_earshot`: argument helpers, the
// module-level functions and, for firmware, the module table (earshot_mod.h lists the
// binding's files; the natmod publishes the same names in earshot_natmod.c).
//
// Module: SAMPLE_RATE, HOP_SAMPLES, WINDOW_SAMPLES, MEL_BINS, MAX_WINDOW, FLAG_VAD,
// FLAG_RAN, FLAG_OUTPUT, FLAG_DETECT, FLAG_GATE, VERSION_MAJOR, VERSION_MINOR (earshot.h),
// crc32(data, crc=0), hops(samples), features(samples, out), Frontend, Model, Engine,
// Detector (earshot_detect.c) and, with MICROPY_PY_EARSHOT_ADAPT, Adapter (earshot_adapt.c).

#include "py/binary.h"  // BYTEARRAY_TYPECODE

#include "earshot_mod.h"

// ---------------------------------------------------------------------------
// Helpers

void *earshot_obj_alloc(size_t n_bytes, const mp_obj_type_t *type) {
    mp_obj_base_t *base = (mp_obj_base_t *)earshot_malloc(n_bytes);
    base->type = type;
    return base;
}

void *earshot_malloc(size_t n_bytes) {
    void *mem = m_malloc(n_bytes);
    if (mem == NULL) {
        mp_raise_msg(&mp_type_MemoryError, MP_ERROR_TEXT("earshot: out of memory"));
    }
    return mem;
}

// why is not ROM text, so in firmware (where MP_ERROR_TEXT may be compressed) it goes
// through "%s"; a natmod's messages are plain C strings.
NORETURN void earshot_raise_value_error(const char *why) {
    #if MICROPY_ENABLE_DYNRUNTIME
    mp_raise_msg(&mp_type_ValueError, why);
    #else
    mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), why);
    #endif
}

const int16_t *earshot_get_samples(mp_obj_t samples_in, size_t *n_hops) {
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

uint8_t *earshot_get_out(mp_obj_t out_in, size_t min_len, bool none_ok,
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

const uint8_t *earshot_get_in(mp_obj_t in, size_t n, bool at_least, mp_rom_error_text_t wrong) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(in, &bufinfo, MP_BUFFER_READ);
    if (at_least ? bufinfo.len < n : bufinfo.len != n) {
        mp_raise_ValueError(wrong);
    }
    return (const uint8_t *)bufinfo.buf;
}

mp_int_t earshot_get_int_in(mp_obj_t arg, mp_int_t dflt, mp_int_t lo, mp_int_t hi,
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

// ---------------------------------------------------------------------------
// crc32(data, crc=0) -> int: CRC-32 of a buffer (as zlib.crc32), continuing from crc.

static mp_obj_t earshot_crc32(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[0], &bufinfo, MP_BUFFER_READ);
    uint32_t crc = n_args > 1 ? (uint32_t)mp_obj_get_int_truncated(args[1]) : 0;
    crc = es_crc32(crc, (const uint8_t *)bufinfo.buf, bufinfo.len);
    return mp_obj_new_int_from_uint(crc);
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_crc32_obj, 1, 2, earshot_crc32);

// ---------------------------------------------------------------------------
// hops(samples) -> int: whole hops (HOP_SAMPLES int16 each) in an int16 buffer, for sizing
// the outputs of features, Frontend.run and Detector.run.

static mp_obj_t earshot_hops(mp_obj_t samples_in) {
    size_t n_hops;
    earshot_get_samples(samples_in, &n_hops);
    return MP_OBJ_NEW_SMALL_INT(n_hops);
}
MP_DEFINE_CONST_FUN_OBJ_1(earshot_hops_obj, earshot_hops);

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
    uint8_t *mem = earshot_malloc(mem_len);
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
MP_DEFINE_CONST_FUN_OBJ_2(earshot_features_obj, earshot_features);

// ---------------------------------------------------------------------------
// The module (firmware; the natmod's mpy_init in earshot_natmod.c publishes the same names)

#if !MICROPY_ENABLE_DYNRUNTIME

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
    { MP_ROM_QSTR(MP_QSTR_FLAG_GATE), MP_ROM_INT(ES_FLAG_GATE) },
    { MP_ROM_QSTR(MP_QSTR_VERSION_MAJOR), MP_ROM_INT(ES_VERSION_MAJOR) },
    { MP_ROM_QSTR(MP_QSTR_VERSION_MINOR), MP_ROM_INT(ES_VERSION_MINOR) },
    { MP_ROM_QSTR(MP_QSTR_crc32), MP_ROM_PTR(&earshot_crc32_obj) },
    { MP_ROM_QSTR(MP_QSTR_hops), MP_ROM_PTR(&earshot_hops_obj) },
    { MP_ROM_QSTR(MP_QSTR_features), MP_ROM_PTR(&earshot_features_obj) },
    { MP_ROM_QSTR(MP_QSTR_Frontend), MP_ROM_PTR(&earshot_frontend_type) },
    { MP_ROM_QSTR(MP_QSTR_Model), MP_ROM_PTR(&earshot_model_type) },
    { MP_ROM_QSTR(MP_QSTR_Engine), MP_ROM_PTR(&earshot_engine_type) },
    { MP_ROM_QSTR(MP_QSTR_Detector), MP_ROM_PTR(&earshot_detector_type) },
    #if MICROPY_PY_EARSHOT_ADAPT
    { MP_ROM_QSTR(MP_QSTR_Adapter), MP_ROM_PTR(&earshot_adapter_type) },
    #endif
};
static MP_DEFINE_CONST_DICT(earshot_module_globals, earshot_module_globals_table);

const mp_obj_module_t earshot_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&earshot_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__earshot, earshot_user_cmodule);

#endif
