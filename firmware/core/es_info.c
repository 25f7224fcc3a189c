// The constants of earshot.h and the sizes of its public structs as data, for bindings
// that cannot read C macros (earshot.core reads them through ctypes).
#include <string.h>

#include "earshot.h"

void es_core_get_info(es_core_info_t *info) {
    if (info == NULL) {
        return;
    }
    memset(info, 0, sizeof(*info));
    info->version_major = ES_VERSION_MAJOR;
    info->version_minor = ES_VERSION_MINOR;
    info->sample_rate_hz = ES_SAMPLE_RATE_HZ;
    info->window_samples = ES_WINDOW_SAMPLES;
    info->hop_samples = ES_HOP_SAMPLES;
    info->mel_bins = ES_MEL_BINS;
    info->max_window = ES_MAX_WINDOW;
    info->flag_vad = ES_FLAG_VAD;
    info->flag_ran = ES_FLAG_RAN;
    info->flag_output = ES_FLAG_OUTPUT;
    info->flag_detect = ES_FLAG_DETECT;
    info->norm_minstat = ES_NORM_MINSTAT;
    info->norm_minstat_gate = ES_NORM_MINSTAT_GATE;
    info->vad_prime_hops = ES_VAD_PRIME_HOPS;
    info->sizeof_core_info = sizeof(es_core_info_t);
    info->sizeof_model_info = sizeof(es_model_info_t);
    info->sizeof_detector_config = sizeof(es_detector_config_t);
    info->sizeof_detector_stats = sizeof(es_detector_stats_t);
    info->sizeof_vad_params = sizeof(es_vad_params_t);
    info->sizeof_vad_state = sizeof(es_vad_state_t);
    info->flag_gate = ES_FLAG_GATE;
    info->gate_preroll_hops = ES_GATE_PREROLL_HOPS;
    info->gate_decimate = ES_GATE_DECIMATE;
}
