// Earshot: MicroPython binding of the C core, module `_earshot`: what its files share.
//
// One set of sources, two builds (as MicroPython's framebuf and btree modules):
// - a dynamic native module (.mpy), built by ./Makefile with MICROPY_ENABLE_DYNRUNTIME set;
// - a user C module compiled into firmware (./micropython.mk, ./micropython.cmake).
// Only the registration differs: a type's file ends with its ROM type (firmware) or with the
// function that fills the type in at load time (natmod, called by mpy_init).
//
// Files, by job (./earshot.mk lists them for both make builds; micropython.cmake the same):
//   earshot_mod.h      this header: shared helpers and types, MICROPY_PY_EARSHOT_ADAPT
//   earshot_mod.c      argument helpers, crc32 / hops / features, the module table (firmware)
//   earshot_detect.c   the detector's types: Frontend, Model, Engine, Detector
//   earshot_adapt.c    the adaptation's type: Adapter (only with MICROPY_PY_EARSHOT_ADAPT)
//   earshot_natmod.c   natmod only: mpy_init, which publishes the module's names
//   natmod_libc.c      natmod only: memset, memcpy, memmove, memcmp for the core
//   natmod_xtensa_rt.c natmod for Xtensa only: integer helpers GCC calls there
// The core (firmware/core) calls none of these; natmod_libc.c stands in for the libc a
// firmware links.
//
// Memory: each core object lives inside its MicroPython object, sized at construction from
// es_*_mem_size(). Frontend.run, Engine.push and Detector.run allocate nothing on the heap
// and return only None or small ints. A Model keeps a reference to its blob buffer (the core
// reads the blob in place), Engine, Detector and Adapter keep a reference to their Model.
//
// API contract: firmware/core/earshot.h, es_adapt.h. Python-side wrapper:
// firmware/modules/earshot.py.
#ifndef EARSHOT_MOD_H
#define EARSHOT_MOD_H

#if MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#endif

#include "earshot.h"

// On-device adaptation (the Adapter type, firmware/core/es_adapt*.c). The build files set it
// (make: MICROPY_PY_EARSHOT_ADAPT=0, cmake: set(MICROPY_PY_EARSHOT_ADAPT 0)) together with
// the list of sources; 0 builds a detection-only `_earshot`.
#ifndef MICROPY_PY_EARSHOT_ADAPT
#define MICROPY_PY_EARSHOT_ADAPT (1)
#endif

// Bytes in one hop of int16 samples.
#define EARSHOT_HOP_BYTES (ES_HOP_SAMPLES * sizeof(int16_t))

// The types, declared for the functions that check for them and for the module table.
#if MICROPY_ENABLE_DYNRUNTIME
// A natmod cannot hold initialised writable data: mpy_init fills these in. They are not
// static: mpy_ld.py cannot relocate references to static .bss variables.
extern mp_obj_full_type_t earshot_frontend_type;
extern mp_obj_full_type_t earshot_model_type;
extern mp_obj_full_type_t earshot_engine_type;
extern mp_obj_full_type_t earshot_detector_type;
extern mp_obj_full_type_t earshot_adapter_type;
#define mp_type_MemoryError (*(mp_obj_type_t *)(mp_load_global(MP_QSTR_MemoryError)))
#else
extern const mp_obj_type_t earshot_frontend_type;
extern const mp_obj_type_t earshot_model_type;
extern const mp_obj_type_t earshot_engine_type;
extern const mp_obj_type_t earshot_detector_type;
extern const mp_obj_type_t earshot_adapter_type;
#endif

// Module-level functions (earshot_mod.c).
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(earshot_crc32_obj);
MP_DECLARE_CONST_FUN_OBJ_1(earshot_hops_obj);
MP_DECLARE_CONST_FUN_OBJ_2(earshot_features_obj);

// Model(blob): the other types keep and read it.
typedef struct _earshot_model_obj_t {
    mp_obj_base_t base;
    mp_obj_t blob;  // keeps the blob alive: the core points into it
    es_model_t *model;
    uint8_t mem[];  // es_model_mem_size() bytes
} earshot_model_obj_t;

// ---------------------------------------------------------------------------
// Argument helpers (earshot_mod.c, but earshot_get_model: earshot_detect.c)

// Allocate an object of n_bytes (header + core memory) and set its type. m_malloc in a natmod
// returns NULL on exhaustion instead of raising, so it is checked in both builds.
void *earshot_obj_alloc(size_t n_bytes, const mp_obj_type_t *type);

// m_malloc(n_bytes), raising MemoryError instead of returning NULL (a natmod's m_malloc).
void *earshot_malloc(size_t n_bytes);

// Raise ValueError(why), where why is a static C string from the core.
NORETURN void earshot_raise_value_error(const char *why);

// The int16 samples in a buffer (bytes, bytearray, memoryview, array('h')) and the number of
// whole hops (ES_HOP_SAMPLES each) they hold; trailing samples are ignored.
const int16_t *earshot_get_samples(mp_obj_t samples_in, size_t *n_hops);

// A writable buffer of at least min_len bytes, or NULL for None when none_ok.
uint8_t *earshot_get_out(mp_obj_t out_in, size_t min_len, bool none_ok,
    mp_rom_error_text_t not_writable, mp_rom_error_text_t too_small);

// A readable buffer of exactly n bytes (or at least, when at_least); raises ValueError.
const uint8_t *earshot_get_in(mp_obj_t in, size_t n, bool at_least, mp_rom_error_text_t wrong);

// An int argument in lo..hi, or dflt for None; raises ValueError(out_of_range).
mp_int_t earshot_get_int_in(mp_obj_t arg, mp_int_t dflt, mp_int_t lo, mp_int_t hi,
    mp_rom_error_text_t out_of_range);

// The Model behind a constructor argument; raises TypeError otherwise.
earshot_model_obj_t *earshot_get_model(mp_obj_t model_in);

// ---------------------------------------------------------------------------
// Natmod registration (earshot_natmod.c calls these from mpy_init)

#if MICROPY_ENABLE_DYNRUNTIME
// table[i] = name: obj, for a locals dict filled in at load time.
#define EARSHOT_METHOD(table, i, name, obj) \
    table[i] = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(name), MP_OBJ_FROM_PTR(&obj) }

// Fill in a type: name, constructor, locals dict.
void earshot_init_type(mp_obj_full_type_t *type, qstr name, mp_make_new_fun_t make_new,
    const mp_obj_dict_t *locals_dict);

// Fill in the types of earshot_detect.c and earshot_adapt.c.
void earshot_detect_natmod_init(void);
void earshot_adapt_natmod_init(void);
#endif

#endif // EARSHOT_MOD_H
