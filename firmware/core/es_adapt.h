// Earshot on-device adaptation: the board learns its user's voice and prunes itself.
//
// Idea after OnDA (arXiv 2603.02247): weight training from pseudo-labels, plus data-aware
// channel pruning, both on the device. Everything here works in caller-owned memory (size
// queries first), allocates nothing, keeps no state outside its handles, and never modifies
// a model blob in place: adaptation writes a NEW blob (format in es_model.h) into a caller
// buffer, which the caller persists and parses as any other blob.
//
// Pieces, in the order the device uses them (firmware/modules/es_adapt.py drives them):
//
// 1. Forward with statistics: es_adapt_forward() runs the network non-streaming on one
//    window (input_frames feature rows, the window that produced a streaming output) with
//    the reference kernels of es_nn.h, on the caller's scratch. It returns the logit (equal
//    to the streaming engine's, bit for bit), the EMBEDDING (the int8 input row of the
//    trainable pointwise layer) and, optionally, accumulates per-channel activation
//    statistics into an es_adapt_stats_t. The engine (es_engine.c) is not touched.
//
// 2. Weight adaptation: es_adapt_trainer_t fine-tunes the last pointwise layer (CONV,
//    kernel 1, layer n_layers - 2) and the classifier (the final FULLY_CONNECTED, one
//    logit) by SGD on binary cross-entropy, from a buffer of pseudo-labelled embeddings.
//    The layers before are frozen, so a stored embedding (in_ch bytes, 48 for the default
//    network) stands for its whole 93 x 40 feature window.
//
//    Arithmetic: FIXED POINT (int32 weights, int64 accumulators), not float32, because
//    - the core also builds as a MicroPython natmod, which links no libgcc: on a core
//      without an FPU (the LX106 stand-in of the Xtensa build test) float code would need
//      soft-float helpers that are not there; integer code links everywhere;
//    - integer training is deterministic: the host (ctypes) and the board produce the same
//      adapted blob byte for byte, which the tests check;
//    - the master weights are kept in the units the int8 layer already uses, so no float
//      scale is needed: W[c][i] = M[c] * w[c][i] * 2^16, where M[c] = multiplier * 2^(shift
//      - 31) is the layer's requantization factor, i.e. output quanta per input quantum
//      (Q16). The loss gradient dL/dlogit = p - label uses the blob's own logistic table
//      for p (exactly the device's probability), in 1/256 steps; the logit scale and the
//      255/256 factor are absorbed into the learning rate.
//    Learning memory (es_adapt_trainer_mem_size): int32 W [out][in], bias [out], FC weights
//    [out], FC bias, one int32 activation row [out], and the handle: 4 * (in * out + 3 *
//    out) bytes + the handle: 9,867 B for models/alexa (48 -> 48 -> 1 head; <= 10 KB;
//    tests/test_adapt.py checks the bound, bench/adapt.py reports it).
//
//    Time slicing: es_adapt_train_slice() does whole samples while their cost fits a MAC
//    budget (es_adapt_sample_macs() each: 2 * in * out + 3 * out + 1), so one call fits the
//    spare time of a hop; the trainer keeps its cursor between calls. Sample order: index
//    (k * step + k / n) mod n for the k-th sample, with step coprime to n (a cheap shuffle).
//
//    Requantization (es_adapt_trainer_write): per output channel, the largest |W| maps to
//    int8 127: w = round(127 W / max|W|), bias = round(127 B / max|W|), and the new
//    multiplier/shift encode max|W| / (127 * 2^16) as TFLite's QuantizeMultiplier does.
//    Where 127 B / max|W| would pass 2^30 (a channel whose weights all went to about 0 but
//    kept its bias), the scale is raised to |B| / (2^30 / 127) + 1 instead of max|W|.
//    Output zero points and scales (so the activation ranges and the logistic table) stay.
//
// 3. Architectural adaptation: channel GROUPS are the output channels of each CONV layer
//    except the last layer; a group flows through the following DEPTHWISE layers into its
//    CONSUMER (the next CONV or FC layer). Removing channel c of a group removes row c of
//    the producer, channel c of the depthwise layers and input column c of the consumer.
//    Importance of channel c (es_adapt_importance), in consumer output quanta:
//      data-aware:     mean|a_c - zp| (statistics on the user's data) * G_c
//      data-agnostic:  producer row gain M_c * sum|w_c| * G_c   (weight norms only)
//    with G_c = sum over consumer outputs o and taps k of M_o * |w[o][k][c]|, the consumer's
//    gain from channel c. es_adapt_select() keeps the top channels of every group;
//    es_adapt_prune() writes the smaller blob, and with statistics folds each removed
//    channel's mean contribution into the consumer's bias (bias += sum_k w * mean(a_c - zp)).
//    The device keeps two statistics: of the positives (importance: the channels the
//    user's wake word uses) and of all kept windows (the means for the bias correction).
//    The pruned model then learns from the adapted one (DISTILL samples, see
//    es_adapt_train_slice), on new windows the adapted model labels.
//
// 4. Acceptance check: some pseudo-labelled negatives are held back (ES_ADAPT_LABEL_CHECK,
//    never trained on, their target the logit before training). es_adapt_check() scores them
//    with the trained head (sliceable like training); es_adapt_accepted() keeps the model in
//    use when they rise on the whole or one of them reaches the cutoff.
//
// 5. Pseudo-labels: es_adapt_labeler_t is the rule by which the detector's outputs become
//    buffer samples (which outputs are candidates, the thinning of negatives, the agreement
//    of the recomputed probability, the CHECK / DISTILL labels, the slot in the buffer). The
//    board (firmware/modules/es_adapt.py, through the binding) and the host
//    (host_tools/earshot/adapt.py, through ctypes) both call it, so fed the same audio they
//    fill the same buffer and write the same adapted blob, byte for byte.
//
// Sources, by job (es_adapt_internal.h): es_adapt.c (groups, statistics, forward pass),
// es_adapt_train.c (trainer, check), es_adapt_write.c (blob writer), es_adapt_prune.c
// (importance, pruning), es_adapt_label.c (pseudo-labels, acceptance). A detection-only
// build leaves all of them out: nothing in the rest of the core calls them.
#ifndef ES_ADAPT_H
#define ES_ADAPT_H

#include <stddef.h>
#include <stdint.h>

#include "earshot.h"

#ifdef __cplusplus
extern "C" {
#endif

// Embedding bytes (in_ch of the trainable pointwise layer), or 0 when the model cannot be
// adapted: the last layer must be FC (one logit) with a bias, layer n_layers - 2 a CONV
// with kernel 1 and stride 1 and a bias, and n_layers >= 3. *why (if not NULL) gets the
// reason or NULL.
size_t es_adapt_embedding_size(const es_model_t *m, const char **why);

// ---------------------------------------------------------------------------
// Activation statistics per channel group.
typedef struct es_adapt_stats_t es_adapt_stats_t;

size_t es_adapt_stats_mem_size(const es_model_t *m);
es_adapt_stats_t *es_adapt_stats_init(void *mem, size_t mem_len, const es_model_t *m);
void es_adapt_stats_reset(es_adapt_stats_t *s);
// Channels over all groups (the length of keep / score arrays), groups, windows seen.
size_t es_adapt_stats_channels(const es_adapt_stats_t *s);
size_t es_adapt_stats_groups(const es_adapt_stats_t *s);
uint32_t es_adapt_stats_windows(const es_adapt_stats_t *s);
// Channels of group g (0 for g out of range).
size_t es_adapt_group_channels(const es_adapt_stats_t *s, size_t g);

// ---------------------------------------------------------------------------
// Non-streaming forward pass over one window of input_frames * ES_MEL_BINS int8 features
// (row-major: hop, bin). scratch: es_adapt_forward_scratch_size(m) bytes, any alignment.
// emb (NULL: not wanted) gets es_adapt_embedding_size() bytes; stats (NULL: none) must have
// been initialised for m. Returns ES_OK and writes *logit, or ES_E_ARG.
size_t es_adapt_forward_scratch_size(const es_model_t *m);
int es_adapt_forward(const es_model_t *m, const int8_t *window, void *scratch,
    size_t scratch_len, es_adapt_stats_t *stats, int8_t *emb, int8_t *logit);

// ---------------------------------------------------------------------------
// Trainer (fixed point, see above).
typedef struct {
    int32_t lr_q24;      // learning rate * 2^24 (> 0; 0 freezes the weights)
    uint8_t pos_weight;  // gradient multiplier of positive samples (>= 1)
    uint8_t neg_weight;  // gradient multiplier of negative samples (>= 1)
    uint8_t distill_gain;  // negatives with a target: gradient per logit step above it (>= 1)
    // L2-SP (Li, Grandvalet, Davoine, "Explicit inductive bias for transfer learning with
    // convolutional networks", ICML 2018): after each trained sample every trainable
    // parameter moves towards its value in the model the trainer started from by
    // round((start - now) / 2^anchor_shift), i.e. SGD on lambda / 2 * |w - w_start|^2 with
    // lr * lambda = 2^-anchor_shift. 0: off; 1..30.
    uint8_t anchor_shift;
} es_adapt_train_params_t;

typedef struct es_adapt_trainer_t es_adapt_trainer_t;

// Learning memory for m (0 if m cannot be adapted).
size_t es_adapt_trainer_mem_size(const es_model_t *m);
// Loads the master weights from m's trainable layers. NULL on error, *why names it
// ("model cannot be adapted: ...", "weights too large for the Q16 master copy", ...).
es_adapt_trainer_t *es_adapt_trainer_init(void *mem, size_t mem_len, const es_model_t *m,
    const es_adapt_train_params_t *params, const char **why);
// Multiply-accumulates of one training sample (forward + backward + update, plus one
// operation per parameter for the anchor when anchor_shift is set).
uint32_t es_adapt_sample_macs(const es_adapt_trainer_t *t);
// Samples trained since init.
uint32_t es_adapt_trainer_samples(const es_adapt_trainer_t *t);
// Sample labels.
#define ES_ADAPT_LABEL_NEGATIVE (0)
#define ES_ADAPT_LABEL_POSITIVE (1)
#define ES_ADAPT_LABEL_DISTILL (2)  // match the target logit (pruned student <- teacher)
#define ES_ADAPT_LABEL_CHECK (3)  // a held-back negative: not trained on, see es_adapt_check
#define ES_ADAPT_LABEL_EMPTY (0xFF)  // training passes over any label above DISTILL (CHECK too)

// Train on whole samples while the next one fits into max_macs. emb: n embeddings
// (n * embedding bytes), labels: n ES_ADAPT_LABEL_* bytes (empty slots are passed over at
// no cost). targets (NULL: none): n int8 logits of the teacher (the model that labelled the
// window). Positives learn by BCE. A negative with a target learns only where the trainer's
// logit exceeds its target, by distill_gain / 255 per logit step (one-sided distillation: no
// negative may score higher than it did, which holds false accepts where the quantized
// sigmoid's gradient is 0); without targets by BCE. DISTILL samples learn (logit - target)
// * distill_gain / 255 from both sides. Returns the samples stepped over in this call,
// empty slots included (0 if max_macs < es_adapt_sample_macs, n is 0 or above 65535, a
// pointer NULL).
size_t es_adapt_train_slice(es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, uint32_t max_macs);
// Logit of one embedding under the current master weights (int8, clamped as the engine).
int8_t es_adapt_trainer_logit(const es_adapt_trainer_t *t, const int8_t *emb);

// Acceptance check of a trained model on held-back negatives (label ES_ADAPT_LABEL_CHECK,
// never trained on), whose targets are the logits the model before training gave them.
typedef struct {
    uint32_t n;      // CHECK samples seen
    int32_t rise;    // sum of (logit - target): > 0 means they score higher than before
    uint32_t above;  // samples whose logit is above their target
    uint32_t fires;  // samples whose probability reaches the model's cutoff
} es_adapt_check_t;
// Accumulate slots [start, start + count) of the buffer into *acc (other labels are passed
// over at no cost); es_adapt_check_macs() per CHECK sample, so the caller can slice it.
// ES_OK, or ES_E_ARG (NULL pointer, range beyond n, no targets).
uint32_t es_adapt_check_macs(const es_adapt_trainer_t *t);
int es_adapt_check(const es_adapt_trainer_t *t, const int8_t *emb, const uint8_t *labels,
    const int8_t *targets, size_t n, size_t start, size_t count, es_adapt_check_t *acc);
// Write the trainer's model with the two trained layers requantized as a new blob into out
// (cap bytes). out NULL: only *out_len (the size needed) is computed. ES_OK, or ES_E_ARG
// with *why.
int es_adapt_trainer_write(const es_adapt_trainer_t *t, uint8_t *out, size_t cap,
    size_t *out_len, const char **why);

// ---------------------------------------------------------------------------
// Channel importance and pruning.
#define ES_ADAPT_DATA_AWARE (1)
#define ES_ADAPT_WEIGHT_NORM (0)

// scores: es_adapt_stats_channels(s) entries, group after group. mode ES_ADAPT_DATA_AWARE
// needs statistics from at least one window. ES_OK or ES_E_ARG.
int es_adapt_importance(const es_model_t *m, const es_adapt_stats_t *s, int mode,
    uint32_t *scores);
// keep[c] = 1 for the channels kept: in group g the max(1, n - round(n * prune_pm[g] /
// 1000)) highest scores (ties: lower index). prune_pm: es_adapt_stats_groups(s) entries,
// per mille removed. ES_OK or ES_E_ARG (an entry above 1000).
int es_adapt_select(const es_adapt_stats_t *s, const uint32_t *scores,
    const uint16_t *prune_pm, uint8_t *keep);
// Write the model without the channels whose keep[c] is 0. s gives the group layout and,
// when bias_fix is 1, the mean activations folded into the consumers' biases. s may come
// from another model with the same channel groups (e.g. the model before fine-tuning).
// out NULL: only *out_len (the size needed) is computed. ES_OK or ES_E_ARG with *why.
int es_adapt_prune(const es_model_t *m, const es_adapt_stats_t *s, const uint8_t *keep,
    int bias_fix, uint8_t *out, size_t cap, size_t *out_len, const char **why);

// ---------------------------------------------------------------------------
// Acceptance and pseudo-labels (es_adapt_label.c).

// The acceptance rule: 1 (keep the trained model) when there were no held-back negatives,
// or when they do not score higher, summed, than before training (rise <= 0) and none
// reaches the cutoff (fires == 0); else 0 (keep the model in use). c NULL: 0.
int es_adapt_accepted(const es_adapt_check_t *c);

// Settings of the pseudo-labeller. int32 so that es_adapt_labeler_init can check the range of
// whatever a binding passes.
typedef struct {
    int32_t pos_cutoff;    // uint8 probability (p * 255, 0..255) at or above which a model
                           // output is a positive candidate
    int32_t neg_cutoff;    // 0..255: at or below which it is a negative candidate
    int32_t neg_every;     // >= 1: one negative candidate in neg_every is looked at (the 1st,
                           // the (neg_every + 1)th, ...)
    int32_t check_every;   // >= 0: every check_every-th kept negative is held back for the
                           // acceptance check (ES_ADAPT_LABEL_CHECK); 0: none
    int32_t pos_share;     // >= 1: positives get max(1, slots / pos_share) of the buffer slots
    int32_t buffer_bytes;  // >= 0: buffer bytes; one slot is an embedding, a label byte and
                           // an int8 target: slots = buffer_bytes / (emb_bytes + 2), >= 2
    int32_t distill;       // 0 or 1: every kept window is labelled ES_ADAPT_LABEL_DISTILL (a
                           // pruned student learns its teacher's logits)
} es_adapt_label_params_t;

// The pseudo-labeller's state, caller-owned (no size query: it is this struct). Fields are
// read-only for the caller; es_adapt_labeler_init sets them all.
typedef struct {
    const es_model_t *m;        // the model whose outputs are labelled (probability, frames)
    es_adapt_label_params_t p;
    uint32_t frames;            // m's input_frames: outputs whose window starts before the
                                // stream are never candidates
    uint32_t slots;             // buffer slots
    uint32_t pos_slots;         // slots [0, pos_slots) hold positives, the rest negatives;
                                // each part is a ring (the oldest overwritten)
    uint32_t neg_seen;          // negative candidates seen, before thinning
    uint32_t kept_neg;          // negatives that agreed (kept)
    uint32_t n_pos;             // positives stored (overwritten ones included)
    uint32_t n_neg;             // negatives stored (overwritten ones included)
} es_adapt_labeler_t;

// Set up l for the outputs of m, with a buffer of embeddings of emb_bytes each (the
// trainee's es_adapt_embedding_size: the student's when distilling). ES_OK, or ES_E_ARG
// with *why (if not NULL) naming the setting out of range.
int es_adapt_labeler_init(es_adapt_labeler_t *l, const es_model_t *m,
    const es_adapt_label_params_t *p, size_t emb_bytes, const char **why);

// Candidates among n consecutive hops of a detector's output (probs: uint8 probabilities,
// flags: ES_FLAG_* bits, as es_detector_run writes them); hop is the stream index of
// probs[0] (0 at the start of a stream). cand[i] gets ES_ADAPT_LABEL_POSITIVE for a model
// output (ES_FLAG_OUTPUT) with the gate open (ES_FLAG_VAD) whose window lies in the stream
// (hop + i + 1 >= frames) and probability >= pos_cutoff; ES_ADAPT_LABEL_NEGATIVE for one
// with probability <= neg_cutoff, of which only one in neg_every is passed on (the others
// only count in neg_seen); else ES_ADAPT_LABEL_EMPTY. Returns the candidates (0 when an
// argument is NULL). The caller then recomputes each candidate's logit on its window
// (es_adapt_forward) and asks es_adapt_label_agrees.
size_t es_adapt_label_candidates(es_adapt_labeler_t *l, const uint8_t *probs,
    const uint8_t *flags, size_t n, uint32_t hop, uint8_t *cand);

// 1 when the recomputed int8 logit of a candidate's window agrees with it: m's probability
// of it is >= pos_cutoff for a positive, <= neg_cutoff for a negative; else 0 (the window is
// dropped).
int es_adapt_label_agrees(const es_adapt_labeler_t *l, uint8_t cand, int8_t logit);

// The label of an agreed candidate (cand ES_ADAPT_LABEL_POSITIVE or _NEGATIVE) about to be
// stored: ES_ADAPT_LABEL_DISTILL when distilling; else the candidate's own, but every
// check_every-th negative ES_ADAPT_LABEL_CHECK. Counts kept negatives.
uint8_t es_adapt_label_next(es_adapt_labeler_t *l, uint8_t cand);

// The buffer slot of a window about to be stored as cand (positives cycle through
// [0, pos_slots), negatives through [pos_slots, slots)); counts it in n_pos / n_neg.
uint32_t es_adapt_label_slot(es_adapt_labeler_t *l, uint8_t cand);

#ifdef __cplusplus
}
#endif

#endif // ES_ADAPT_H
