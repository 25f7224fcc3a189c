// Earshot model blob parser (format in es_model.h).
//
// Every field is checked before it is used: no read ever leaves [blob, blob + total_bytes),
// and every value the kernels rely on is range-checked, so that no blob (truncated,
// corrupted or hostile) can make the engine read out of bounds or overflow int32 arithmetic.
#include <string.h>

#include "es_internal.h"
#include "es_model.h"
#include "es_nn.h"

static uint16_t es_rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t es_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
           | ((uint32_t)p[3] << 24);
}

static int32_t es_rd_i16(const uint8_t *p) {
    uint16_t u = es_rd16(p);
    return u >= 0x8000u ? (int32_t)u - 0x10000 : (int32_t)u;
}

size_t es_model_mem_size(void) {
    return sizeof(es_model_t) + ES_ALIGN_SLACK;
}

// One array of the layer record at rec + field: offset and size (bytes) must lie inside
// the blob, the offset be 4-byte aligned and the size equal `expect`. Returns the pointer
// into the blob, or NULL.
static const uint8_t *es_model_array(const uint8_t *blob, uint32_t total, const uint8_t *rec,
    size_t field, uint32_t expect) {
    uint32_t off = es_rd32(rec + field);
    uint32_t size = es_rd32(rec + field + 4);
    if (size != expect || (off & 3u) != 0 || off > total || size > total - off) {
        return NULL;
    }
    return blob + off;
}

static const char *es_model_parse_layer(es_model_layer_t *l, const uint8_t *blob,
    uint32_t total, const uint8_t *rec, uint16_t version) {
    l->type = rec[0];
    l->kernel = rec[1];
    l->stride = rec[2];
    l->weight_bits = version >= ES_BLOB_VERSION_INT4 && rec[3] != 0 ? rec[3] : 8u;
    l->in_ch = es_rd16(rec + 4);
    l->out_ch = es_rd16(rec + 6);
    int32_t in_zp = es_rd_i16(rec + 8);
    int32_t out_zp = es_rd_i16(rec + 10);
    l->act_min = es_rd_i16(rec + 12);
    l->act_max = es_rd_i16(rec + 14);
    l->input_offset = -in_zp;
    l->output_offset = out_zp;

    if (l->type != ES_LAYER_CONV && l->type != ES_LAYER_DEPTHWISE && l->type != ES_LAYER_FC) {
        return "layer: unknown type";
    }
    if (l->kernel == 0 || l->stride == 0) {
        return "layer: kernel or stride is 0";
    }
    if (l->in_ch == 0 || l->out_ch == 0) {
        return "layer: zero channels";
    }
    if (l->type == ES_LAYER_DEPTHWISE && l->in_ch != l->out_ch) {
        return "layer: depthwise in_ch != out_ch";
    }
    if (l->type == ES_LAYER_FC && (l->kernel != 1 || l->stride != 1)) {
        return "layer: fully connected with kernel or stride != 1";
    }
    if (l->weight_bits != 8u && l->weight_bits != ES_NN_INT4) {
        return "layer: weight_bits not 8 or 4";
    }
    if (in_zp < -128 || in_zp > 127 || out_zp < -128 || out_zp > 127) {
        return "layer: zero point outside int8";
    }
    if (l->act_min < -128 || l->act_max > 127 || l->act_min > l->act_max) {
        return "layer: activation range outside int8";
    }
    uint32_t taps = (uint32_t)l->kernel * (l->type == ES_LAYER_DEPTHWISE ? 1u : l->in_ch);
    if (taps > ES_MODEL_MAX_TAPS) {
        return "layer: kernel * in_ch too large";
    }
    // depthwise: [kernel][ch]; conv: [out][kernel][in]; FC: [out][in].
    const uint32_t n_weights = taps * l->out_ch;
    const uint32_t vec = 4u * l->out_ch;
    const uint32_t w_bytes = l->weight_bits == ES_NN_INT4 ? (n_weights + 1u) / 2u : n_weights;
    const uint8_t *w = es_model_array(blob, total, rec, 16, w_bytes);
    if (w == NULL) {
        return "layer: weights out of bounds or wrong size";
    }
    l->weights = (const int8_t *)w;
    l->bias = NULL;
    if (es_rd32(rec + 28) != 0) {
        const uint8_t *b = es_model_array(blob, total, rec, 24, vec);
        if (b == NULL) {
            return "layer: bias out of bounds or wrong size";
        }
        l->bias = (const int32_t *)(const void *)b;
        for (uint32_t c = 0; c < l->out_ch; c++) {
            if (l->bias[c] > ES_MODEL_MAX_BIAS || l->bias[c] < -ES_MODEL_MAX_BIAS) {
                return "layer: bias beyond +-2^30";
            }
        }
    }
    const uint8_t *m = es_model_array(blob, total, rec, 32, vec);
    if (m == NULL) {
        return "layer: multiplier out of bounds or wrong size";
    }
    const uint8_t *s = es_model_array(blob, total, rec, 40, vec);
    if (s == NULL) {
        return "layer: shift out of bounds or wrong size";
    }
    l->multiplier = (const int32_t *)(const void *)m;
    l->shift = (const int32_t *)(const void *)s;
    for (uint32_t c = 0; c < l->out_ch; c++) {
        int32_t mult = l->multiplier[c];
        if (mult != 0 && mult < (int32_t)0x40000000) {
            return "layer: multiplier not 0 or in [2^30, 2^31)";
        }
        if (l->shift[c] < -31 || l->shift[c] > 30) {
            return "layer: shift outside [-31, 30]";
        }
    }
    return NULL;
}

static const char *es_model_parse_blob(es_model_t *m, const uint8_t *blob, size_t blob_len) {
    const uint32_t one = 1;
    if (*(const uint8_t *)&one != 1) {
        return "big-endian host: the blob's int32 arrays are read in place (little-endian)";
    }
    if (((uintptr_t)blob & 3u) != 0) {
        return "blob not 4-byte aligned";
    }
    if (blob_len < ES_BLOB_HEADER_BYTES) {
        return "blob shorter than its header";
    }
    if (memcmp(blob, ES_BLOB_MAGIC, 4) != 0) {
        return "bad magic";
    }
    uint16_t version = es_rd16(blob + 4);
    if (version < 1 || version > ES_BLOB_VERSION) {
        return "unsupported format version";
    }
    uint16_t header_bytes = es_rd16(blob + 6);
    uint32_t total = es_rd32(blob + 12);
    if (header_bytes < ES_BLOB_HEADER_BYTES || (header_bytes & 3u) != 0) {
        return "bad header size";
    }
    if (total < header_bytes || (total & 3u) != 0) {
        return "bad total size";
    }
    if (total > blob_len) {
        return "blob truncated";
    }
    if (es_crc32(0, blob + ES_BLOB_CRC_START, total - ES_BLOB_CRC_START) != es_rd32(blob + 8)) {
        return "payload CRC mismatch";
    }
    if (es_rd32(blob + 16) != ES_SAMPLE_RATE_HZ) {
        return "sample rate differs from ES_SAMPLE_RATE_HZ";
    }
    if (es_rd16(blob + 20) != ES_WINDOW_SAMPLES) {
        return "window differs from ES_WINDOW_SAMPLES";
    }
    if (es_rd16(blob + 22) != ES_HOP_SAMPLES) {
        return "hop differs from ES_HOP_SAMPLES";
    }
    if (es_rd16(blob + 24) != ES_MEL_BINS) {
        return "mel bins differ from ES_MEL_BINS";
    }
    es_model_info_t *info = &m->info;
    memset(info, 0, sizeof(*info));
    info->format_version = version;
    info->input_bins = ES_MEL_BINS;
    info->input_frames = es_rd16(blob + 26);
    info->output_stride = es_rd16(blob + 28);
    info->n_layers = es_rd16(blob + 30);
    info->cutoff = blob[32];
    info->window = blob[33];
    info->refractory = es_rd16(blob + 34);
    info->payload_bytes = total - header_bytes;
    info->input_norm = blob[46];
    if (info->input_norm > ES_NORM_MINSTAT_GATE ||
        (version < ES_BLOB_VERSION_INT4
         && (info->input_norm != 0) != (version >= ES_BLOB_VERSION_NORM))) {
        return "input_norm unknown or not matching the format version";
    }
    if (info->n_layers == 0 || info->n_layers > ES_MODEL_MAX_LAYERS) {
        return "layer count outside 1..ES_MODEL_MAX_LAYERS";
    }
    if (info->cutoff == 0 || info->window == 0 || info->window > ES_MAX_WINDOW) {
        return "default cutoff or window out of range";
    }
    uint32_t layers_off = es_rd32(blob + 36);
    uint32_t logistic_off = es_rd32(blob + 40);
    uint16_t layer_bytes = es_rd16(blob + 44);
    if (layer_bytes < ES_BLOB_LAYER_BYTES || (layer_bytes & 3u) != 0) {
        return "bad layer record size";
    }
    uint32_t table_bytes = (uint32_t)layer_bytes * info->n_layers;
    if ((layers_off & 3u) != 0 || layers_off < header_bytes || layers_off > total
        || table_bytes > total - layers_off) {
        return "layer table out of bounds";
    }
    if (logistic_off > total || 256u > total - logistic_off) {
        return "logistic table out of bounds";
    }
    m->logistic = blob + logistic_off;

    // Layers, chain consistency, receptive field and cost.
    uint32_t cum_stride = 1;
    for (uint16_t i = 0; i < info->n_layers; i++) {
        es_model_layer_t *l = &m->layers[i];
        const char *why = es_model_parse_layer(l, blob, total, blob + layers_off
            + (uint32_t)i * layer_bytes, version);
        if (why != NULL) {
            return why;
        }
        if (i == 0) {
            if (l->in_ch != ES_MEL_BINS) {
                return "layer 0: in_ch differs from ES_MEL_BINS";
            }
            if (l->input_offset != 0) {
                return "layer 0: input zero point is not 0";
            }
            if (l->type == ES_LAYER_FC) {
                return "layer 0: fully connected first layer";
            }
        } else {
            const es_model_layer_t *prev = &m->layers[i - 1];
            if (l->in_ch != prev->out_ch) {
                return "layer chain: in_ch differs from the previous out_ch";
            }
            if (l->input_offset != -prev->output_offset) {
                return "layer chain: input zero point differs from the previous output's";
            }
            if (prev->type == ES_LAYER_FC) {
                return "layer chain: fully connected layer before the last";
            }
        }
        cum_stride *= l->stride;
        if (cum_stride > 0xFFFFu) {
            return "layer strides: product exceeds 65535";
        }
    }
    if (m->layers[info->n_layers - 1].out_ch != 1) {
        return "last layer: out_ch is not 1 (one logit)";
    }
    if (cum_stride != info->output_stride) {
        return "output_stride differs from the product of the layer strides";
    }
    uint32_t frames = 1;
    for (uint16_t i = info->n_layers; i-- > 0;) {
        frames = (frames - 1u) * m->layers[i].stride + m->layers[i].kernel;
        if (frames > 0xFFFFu) {
            return "receptive field exceeds 65535 hops";
        }
    }
    if (frames != info->input_frames) {
        return "input_frames differs from the layers' receptive field";
    }
    uint64_t macs = 0;
    cum_stride = 1;
    for (uint16_t i = 0; i < info->n_layers; i++) {
        const es_model_layer_t *l = &m->layers[i];
        cum_stride *= l->stride;
        uint64_t per_run = (uint64_t)l->kernel * l->in_ch
            * (l->type == ES_LAYER_DEPTHWISE ? 1u : l->out_ch);
        macs += per_run * (info->output_stride / cum_stride);
    }
    info->macs_per_output = macs > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)macs;
    size_t engine_bytes = es_engine_mem_size(m);
    info->engine_bytes = engine_bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)engine_bytes;
    return NULL;
}

es_model_t *es_model_parse(void *mem, size_t mem_len, const uint8_t *blob, size_t blob_len,
    const char **why) {
    const char *reason = NULL;
    es_model_t *m = es_align_ptr(mem);
    if (mem == NULL || mem_len < es_model_mem_size()) {
        reason = "model buffer NULL or smaller than es_model_mem_size()";
    } else if (blob == NULL) {
        reason = "blob is NULL";
    } else {
        memset(m, 0, sizeof(*m));
        reason = es_model_parse_blob(m, blob, blob_len);
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? m : NULL;
}

void es_model_get_info(const es_model_t *m, es_model_info_t *info) {
    if (m != NULL && info != NULL) {
        *info = m->info;
    }
}

uint8_t es_model_probability(const es_model_t *m, int8_t logit) {
    return m->logistic[(int32_t)logit + 128];
}
