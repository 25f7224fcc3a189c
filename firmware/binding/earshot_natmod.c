// Earshot binding: the natmod's entry point (natmod build only; earshot_mod.h lists the
// binding's files). mpy_init fills in the types, which a natmod cannot hold initialised,
// and publishes the names the firmware's module table (earshot_mod.c) lists.

#include "earshot_mod.h"

void earshot_init_type(mp_obj_full_type_t *type, qstr name, mp_make_new_fun_t make_new,
    const mp_obj_dict_t *locals_dict) {
    type->base.type = (void *)&mp_type_type;
    type->flags = MP_TYPE_FLAG_NONE;
    type->name = name;
    MP_OBJ_TYPE_SET_SLOT(type, make_new, make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(type, locals_dict, (void *)locals_dict, 1);
}

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

    earshot_detect_natmod_init();
    #if MICROPY_PY_EARSHOT_ADAPT
    earshot_adapt_natmod_init();
    #endif

    mp_store_global(MP_QSTR_SAMPLE_RATE, MP_OBJ_NEW_SMALL_INT(ES_SAMPLE_RATE_HZ));
    mp_store_global(MP_QSTR_HOP_SAMPLES, MP_OBJ_NEW_SMALL_INT(ES_HOP_SAMPLES));
    mp_store_global(MP_QSTR_WINDOW_SAMPLES, MP_OBJ_NEW_SMALL_INT(ES_WINDOW_SAMPLES));
    mp_store_global(MP_QSTR_MEL_BINS, MP_OBJ_NEW_SMALL_INT(ES_MEL_BINS));
    mp_store_global(MP_QSTR_MAX_WINDOW, MP_OBJ_NEW_SMALL_INT(ES_MAX_WINDOW));
    mp_store_global(MP_QSTR_FLAG_VAD, MP_OBJ_NEW_SMALL_INT(ES_FLAG_VAD));
    mp_store_global(MP_QSTR_FLAG_RAN, MP_OBJ_NEW_SMALL_INT(ES_FLAG_RAN));
    mp_store_global(MP_QSTR_FLAG_OUTPUT, MP_OBJ_NEW_SMALL_INT(ES_FLAG_OUTPUT));
    mp_store_global(MP_QSTR_FLAG_DETECT, MP_OBJ_NEW_SMALL_INT(ES_FLAG_DETECT));
    mp_store_global(MP_QSTR_FLAG_GATE, MP_OBJ_NEW_SMALL_INT(ES_FLAG_GATE));
    mp_store_global(MP_QSTR_VERSION_MAJOR, MP_OBJ_NEW_SMALL_INT(ES_VERSION_MAJOR));
    mp_store_global(MP_QSTR_VERSION_MINOR, MP_OBJ_NEW_SMALL_INT(ES_VERSION_MINOR));
    mp_store_global(MP_QSTR_crc32, MP_OBJ_FROM_PTR(&earshot_crc32_obj));
    mp_store_global(MP_QSTR_hops, MP_OBJ_FROM_PTR(&earshot_hops_obj));
    mp_store_global(MP_QSTR_features, MP_OBJ_FROM_PTR(&earshot_features_obj));
    mp_store_global(MP_QSTR_Frontend, MP_OBJ_FROM_PTR(&earshot_frontend_type));
    mp_store_global(MP_QSTR_Model, MP_OBJ_FROM_PTR(&earshot_model_type));
    mp_store_global(MP_QSTR_Engine, MP_OBJ_FROM_PTR(&earshot_engine_type));
    mp_store_global(MP_QSTR_Detector, MP_OBJ_FROM_PTR(&earshot_detector_type));
    #if MICROPY_PY_EARSHOT_ADAPT
    mp_store_global(MP_QSTR_Adapter, MP_OBJ_FROM_PTR(&earshot_adapter_type));
    #endif

    MP_DYNRUNTIME_INIT_EXIT
}
