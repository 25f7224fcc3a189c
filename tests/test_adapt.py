"""On-device adaptation in the C core (firmware/core/es_adapt*.c) through ctypes: the
non-streaming forward equals the streaming engine bit for bit; pruning with every channel kept
rewrites the blob byte for byte; pruning a channel equals deleting it (numpy) with its mean
folded into the consumer's bias; requantization without learning keeps the logits; training
separates pseudo-labelled classes; slices respect their MAC budget; learning memory <= 10 KB;
bad arguments raise naming the problem. The board and the virtual board: test_adapt_board.py;
the CLI and bench/adapt.py: test_adapt_cli.py.
"""


import numpy as np
import pytest
from adapt_support import _windows
from earshot import adapt
from earshot.model import Model, blob

# ---------------------------------------------------------------------------------------
# C core


def test_forward_equals_streaming_engine_and_counts_windows(factory, feats):
    m = Model(factory)
    hops, logits, wins = _windows(m, feats)
    assert len(hops) > 20
    fwd, stats = adapt.Forward(m), adapt.Stats(m)
    for w, logit in zip(wins, logits):
        got, emb = fwd(w, stats)
        assert got == logit
        assert emb.shape == (adapt.embedding_size(m),)
    assert stats.windows == len(wins)
    assert sum(stats.groups) == stats.channels


def test_prune_keep_all_rewrites_the_same_blob(factory, feats):
    m = Model(factory)
    stats = adapt.Stats(m)
    fwd = adapt.Forward(m)
    for w in _windows(m, feats)[2][:5]:
        fwd(w, stats)
    keep = np.ones(stats.channels, np.uint8)
    assert adapt.prune(m, stats, keep, bias_fix=True) == factory


def test_prune_equals_numpy_channel_deletion(factory, feats):
    m = Model(factory)
    stats, fwd = adapt.Stats(m), adapt.Forward(m)
    for w in _windows(m, feats)[2]:
        fwd(w, stats)
    keep = adapt.select(stats, adapt.importance(m, stats), 0.25)
    for g, n in enumerate(stats.groups):  # every group lost round(n / 4) channels
        off = sum(stats.groups[:g])
        assert keep[off : off + n].sum() == n - round(n * 0.25)
    layers = blob.describe(factory)["layers"]
    # Expected: delete the channels in numpy, without bias correction.
    got = blob.describe(adapt.prune(m, stats, keep, bias_fix=False))["layers"]
    groups, off, cur = [], 0, None
    for i, layer in enumerate(layers):
        if layer["type"] == "conv" and i + 1 < len(layers):
            cur = keep[off : off + layer["out_ch"]].astype(bool)
            off += layer["out_ch"]
        elif layer["type"] != "depthwise":
            cur = None
        groups.append(cur)
    for i, (a, b) in enumerate(zip(layers, got)):
        out_mask = groups[i]
        in_mask = groups[i - 1] if i else None
        w = np.asarray(a["weights"], np.int8)
        if a["type"] == "depthwise":
            w = w.reshape(a["kernel"], a["in_ch"])[:, in_mask] if in_mask is not None else w
        else:
            w = w.reshape(a["out_ch"], a["kernel"], a["in_ch"])
            if out_mask is not None:
                w = w[out_mask]
            if in_mask is not None:
                w = w[:, :, in_mask]
        np.testing.assert_array_equal(np.asarray(b["weights"]).reshape(-1), w.reshape(-1))
        sel = out_mask if out_mask is not None else slice(None)
        for key in ("multiplier", "shift", "bias"):
            np.testing.assert_array_equal(b[key], np.asarray(a[key])[sel])
    # With the correction, the consumers' biases move by sum(w * mean) of removed channels.
    fixed = blob.describe(adapt.prune(m, stats, keep, bias_fix=True))["layers"]
    moved = [
        i for i, (a, b) in enumerate(zip(got, fixed)) if not np.array_equal(a["bias"], b["bias"])
    ]
    assert moved and all(layers[i]["type"] in ("conv", "fc") and i > 0 for i in moved)
    small = Model(adapt.prune(m, stats, keep))
    assert small.info["macs_per_output"] < m.info["macs_per_output"]


def test_requantization_without_learning_keeps_logits(factory, feats):
    m = Model(factory)
    t = adapt.Trainer(m, lr=0.0)
    out = Model(t.write())
    _, a, _ = _windows(m, feats)
    _, b, _ = _windows(out, feats)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert len(t.write()) == len(factory)


def test_requantization_keeps_the_bias_of_a_channel_with_no_weights(feats):
    """A trained output channel whose weights are all 0 but whose bias is large (what network
    slimming leaves: a switched-off channel) is rewritten with a larger scale, not refused
    ("bias beyond +-2^30"), and the rewritten model computes the same logits."""
    layers = blob.random_layers(seed=5)
    pw = layers[-2]  # the trained pointwise layer
    assert pw["type"] == "conv" and pw["kernel"] == 1
    w = np.asarray(pw["weights"]).reshape(pw["out_ch"], -1).copy()
    w[0] = 0
    gain = float(pw["multiplier"][0]) * 2.0 ** (int(pw["shift"][0]) - 31)
    bias = np.asarray(pw["bias"]).copy()
    bias[0] = round(200 / gain)  # 200 output quanta: 127 * bias(Q16) / max|W|(1) > 2^30
    pw.update(weights=w.astype(np.int8), bias=bias.astype(np.int32))
    m = Model(blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9, window=3,
                        refractory=10))
    out = Model(adapt.Trainer(m, lr=0.0).write())
    _, a, _ = _windows(m, feats)
    _, b, _ = _windows(out, feats)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_rewriting_keeps_biases_at_the_format_bound(feats):
    """A layer the adaptation does not train may carry a bias of exactly 2^30, the largest the
    parser accepts (trained models had it on channels whose weights went to 0): requantizing
    the head and pruning with bias correction both write a valid blob, with the same logits
    when nothing is pruned."""
    layers = blob.random_layers(seed=6)
    pw1 = layers[2]  # block1's pointwise layer: neither trained nor the last
    assert pw1["type"] == "conv" and pw1["kernel"] == 1
    w = np.asarray(pw1["weights"]).reshape(pw1["out_ch"], -1).copy()
    w[0] = 0
    bias = np.asarray(pw1["bias"]).copy()
    bias[0] = 1 << 30
    pw1.update(weights=w.astype(np.int8), bias=bias.astype(np.int32))
    src = blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9, window=3,
                    refractory=10)
    m = Model(src)
    out = Model(adapt.Trainer(m, lr=0.0).write())
    assert np.abs(_windows(m, feats)[1].astype(int) - _windows(out, feats)[1]).max() <= 1
    stats, fwd = adapt.Stats(m), adapt.Forward(m)
    for win in _windows(m, feats)[2]:
        fwd(win, stats)
    keep = adapt.select(stats, adapt.importance(m, stats), 0.25)
    pruned = blob.describe(adapt.prune(m, stats, keep, bias_fix=True))["layers"]
    assert all(abs(int(b)) <= 1 << 30 for ly in pruned if ly["bias"] is not None
               for b in ly["bias"])


def test_training_separates_pseudo_labels_and_respects_slices(factory, feats):
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    rng = np.random.default_rng(0)
    labels = (rng.random(len(embs)) < 0.3).astype(np.uint8)  # arbitrary: must be learnable
    labels[0], labels[1] = 1, 0
    t = adapt.Trainer(m, lr=0.004, pos_weight=2)
    before = np.array([t.logit(e) for e in embs], float)
    gap0 = before[labels == 1].mean() - before[labels == 0].mean()
    done = t.train_slice(embs, labels, 3 * t.sample_macs + t.sample_macs // 2)
    assert done == 3  # whole samples only, never above the budget
    assert t.train_slice(embs, labels, t.sample_macs - 1) == 0
    t.train(embs, labels, 30 * len(embs))
    after = np.array([t.logit(e) for e in embs], float)
    gap1 = after[labels == 1].mean() - after[labels == 0].mean()
    assert gap1 > gap0 + 5
    # The written blob computes (nearly) the trainer's logits.
    out = Model(t.write())
    fwd2 = adapt.Forward(out)
    wins = _windows(m, feats)[2]
    diffs = [abs(fwd2(w)[0] - t.logit(e)) for w, e in zip(wins, embs)]
    assert np.mean(diffs) < 2


def test_acceptance_check_counts_rises_and_fires(factory, feats):
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    t = adapt.Trainer(m, lr=0.001)
    logits = np.array([t.logit(e) for e in embs], np.int64)
    n = len(embs)
    labels = np.full(n, adapt.NEGATIVE, np.uint8)
    labels[::2] = adapt.CHECK  # only these count
    chk = labels == adapt.CHECK
    same = t.check(embs, labels, logits.astype(np.int8))
    fires = sum(m.probability(int(x)) >= m.info["cutoff"] for x in logits[chk])
    assert same == {"n": int(chk.sum()), "rise": 0, "above": 0, "fires": int(fires)}
    # Targets 3 below the logits: every held-back negative rose by 3 -> refused.
    lower = np.clip(logits - 3, -128, 127)
    got = t.check(embs, labels, lower.astype(np.int8))
    assert got["rise"] == int((logits - lower)[chk].sum()) > 0
    assert got["above"] == int(((logits - lower)[chk] > 0).sum())
    assert not adapt.accepted(got)
    higher = np.clip(logits + 3, -128, 127)
    got = t.check(embs, labels, higher.astype(np.int8))
    assert got["rise"] < 0 and got["above"] == 0
    assert adapt.accepted(got) == (got["fires"] == 0)
    assert adapt.accepted({"n": 0, "rise": 0, "above": 0, "fires": 0})
    # Training never steps on held-back negatives.
    only_check = np.full(n, adapt.CHECK, np.uint8)
    t2 = adapt.Trainer(m, lr=0.01)
    t2.train(embs, only_check, n)
    assert t2.write() == adapt.Trainer(m, lr=0.01).write()


def test_anchor_holds_the_head_near_its_factory_weights(factory, feats):
    """L2-SP (anchor_shift): the same training moves the logits less the stronger the pull,
    costs one operation per parameter more per sample, and a 0..30 shift is checked."""
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    labels = (np.random.default_rng(0).random(len(embs)) < 0.3).astype(np.uint8)
    labels[0], labels[1] = 1, 0
    start = np.array([adapt.Trainer(m, lr=0.004).logit(e) for e in embs], float)
    moved, macs = {}, {}
    for shift in (0, 8, 2):
        t = adapt.Trainer(m, lr=0.004, pos_weight=2, anchor_shift=shift)
        t.train(embs, labels, 30 * len(embs))
        moved[shift] = np.abs(np.array([t.logit(e) for e in embs], float) - start).mean()
        macs[shift] = t.sample_macs
    assert moved[0] > moved[8] > moved[2]
    assert moved[2] < 0.5 * moved[0]
    head = blob.describe(factory)["layers"][-2]  # the trainable pointwise layer
    n_params = head["in_ch"] * head["out_ch"] + 2 * head["out_ch"] + 1  # w, b, FC w, FC b
    assert macs[8] == macs[2] == macs[0] + n_params
    with pytest.raises(ValueError, match="anchor_shift"):
        adapt.Trainer(m, lr=0.004, anchor_shift=31)


def test_learning_memory_within_10_kb(factory):
    m = Model(factory)
    assert adapt.learning_memory_bytes(m) <= 10 * 1024
    pl = adapt.PseudoLabeler(m)
    assert pl.buffer_bytes <= adapt.DEFAULTS["buffer_bytes"]


def test_bad_arguments_name_the_problem(factory):
    m = Model(factory)
    with pytest.raises(ValueError, match="learning rate"):
        adapt.Trainer(m, lr=2.0)
    with pytest.raises(ValueError, match="pos_weight"):
        adapt.Trainer(m, lr=0.01, pos_weight=0)
    stats = adapt.Stats(m)
    with pytest.raises(ValueError, match="statistics"):
        adapt.importance(m, stats, adapt.DATA_AWARE)
    with pytest.raises(ValueError, match="prune ratios"):
        adapt.select(stats, np.zeros(stats.channels, np.uint32), 1.5)
    keep = np.ones(stats.channels, np.uint8)
    keep[: stats.groups[0]] = 0
    with pytest.raises(ValueError, match="lose all its channels"):
        adapt.prune(m, stats, keep, bias_fix=False)
    with pytest.raises(ValueError, match="at least one window"):
        adapt.prune(m, stats, np.ones(stats.channels, np.uint8), bias_fix=True)
    with pytest.raises(ValueError, match="window must be int8"):
        adapt.Forward(m)(np.zeros((3, 40), np.int8))
    # A model without a pointwise + classifier head cannot be adapted.
    with pytest.raises(ValueError, match="cannot be adapted"):
        adapt.embedding_size(
            Model(
                blob.random_model(
                    seed=0, cfg={"first": {"filters": 8, "kernel": 3, "stride": 1}, "blocks": []}
                )
            )
        )
