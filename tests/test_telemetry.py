"""Telemetry framing: the host decoder against garbage, truncation and bit flips, and frames
produced by the real device module (firmware/modules/es_telemetry.py) on the MicroPython
unix port, including from the detector loop (es_loop.py) with a test-double detector."""

import random
import subprocess
import sys
from pathlib import Path

import pytest

from earshot.board import telemetry as T
from earshot.paths import FIRMWARE

MICROPYTHON = Path(sys.executable).with_name("micropython")
MODULES = FIRMWARE / "modules"


def _frames(n, start_seq=0):
    out = [T.encode_fields(T.HELLO, start_seq, stream=7, hop_samples=160, rate_hz=16000,
                           cutoff=230, window=5, refractory=20, vad=1, stats_every=100)]
    for i in range(1, n):
        if i % 3 == 0:
            out.append(T.encode_fields(T.DETECT, start_seq + i, hop=i * 1000 + 0xA5, score=0x7D))
        else:
            out.append(T.encode_fields(T.STATS, start_seq + i, hop=i * 100, hops=100,
                                       vad_hops=0x04, model_hops=0x0A, detections=i // 3,
                                       us_sum=0xA50D0A04, us_max=0x7D, mem_free=123456))
    return out


def _decode_all(data, chunk=None):
    dec = T.Decoder()
    frames = []
    if chunk is None:
        frames += dec.feed(data)
    else:
        for i in range(0, len(data), chunk):
            frames += dec.feed(data[i : i + chunk])
    return dec, frames


def test_roundtrip_any_chunking_and_stuffing():
    wire = _frames(30)
    joined = b"".join(wire)
    # Every escaped value occurs in the bodies above, and none of them leaks onto the wire.
    for f in wire:
        assert b"\x04" not in f and b"\n" not in f and b"\r" not in f
        assert f.count(b"\xa5") == 1
    for chunk in (None, 1, 2, 7, 64):
        dec, frames = _decode_all(joined, chunk)
        assert [f.seq for f in frames] == list(range(30))
        assert (dec.frames, dec.corrupt, dec.dropped) == (30, 0, 0)
        assert frames[3].name == "detect" and frames[3]["hop"] == 3000 + 0xA5
        assert frames[1]["us_sum"] == 0xA50D0A04 and frames[1]["vad_hops"] == 4


def test_interleaved_repl_text_is_kept_and_frames_survive():
    wire = _frames(6)
    text = [b"MicroPython v1.29\r\n>>> ", b"Traceback...\n", b"\xa5", b"x", b"", b"ok\n"]
    data = b"".join(t + f for t, f in zip(text, wire))
    dec, frames = _decode_all(data, 5)
    assert [f.seq for f in frames] == list(range(6))
    assert dec.dropped == 0
    # The lone 0xA5 (a false sync) may count as corrupt; the printable text is kept.
    shown = dec.take_text()
    assert "MicroPython v1.29" in shown and "Traceback" in shown and "ok" in shown


def test_dropped_frames_counted_from_sequence_gaps():
    wire = _frames(10, start_seq=65530)  # wraps around 65535 -> 0
    kept = [f for i, f in enumerate(wire) if i not in (2, 5, 6)]
    dec, frames = _decode_all(b"".join(kept))
    assert dec.frames == 7 and dec.dropped == 3 and dec.corrupt == 0
    # A HELLO starts a new stream (e.g. a rebooted board): no gap is counted across it.
    dec2, _ = _decode_all(b"".join(_frames(3, 100) + _frames(3, 5)))
    assert dec2.dropped == 0


def test_truncated_frame_is_corrupt_and_next_frame_still_decodes():
    wire = _frames(5)
    data = wire[0] + wire[1][:-3] + wire[2] + wire[3][:4] + wire[4]
    dec, frames = _decode_all(data, 3)
    assert [f.seq for f in frames] == [0, 2, 4]
    assert dec.corrupt == 2
    assert dec.dropped == 2


def test_bit_flips_never_raise_and_never_pass_a_bad_frame():
    rng = random.Random(1234)
    wire = _frames(40)
    good = {f.seq: f.fields for f in _decode_all(b"".join(wire))[1]}
    damaged = 0
    for trial in range(300):
        data = bytearray(b"".join(wire))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        dec, frames = _decode_all(bytes(data), rng.choice([1, 13, 4096]))
        # A decoded frame is always one that was sent, bit for bit.
        for f in frames:
            assert good.get(f.seq) == f.fields
        assert dec.frames + dec.corrupt + dec.dropped >= 1
        damaged += dec.corrupt > 0 or dec.frames < 40
    assert damaged > 250  # nearly every flip is noticed


def test_random_garbage_never_raises():
    rng = random.Random(99)
    dec = T.Decoder()
    for _ in range(200):
        dec.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    wire = _frames(3)
    frames = dec.feed(b"".join(wire))
    assert [f.seq for f in frames][-3:] == [0, 1, 2]


def test_bad_version_and_oversize_length_are_corrupt():
    bad_version = T.encode(T.STATS, 0, b"\x00" * 30, version=9)
    oversize = T.SYNC + T.stuff(T.HEADER.pack(T.VERSION, T.TEXT, 1, T.MAX_PAYLOAD + 1))
    good = T.encode(T.TEXT, 2, b"hello")
    dec, frames = _decode_all(bad_version + oversize + good)
    assert [f.fields for f in frames] == [{"text": "hello"}]
    assert dec.corrupt == 2


@pytest.fixture(scope="module")
def micropython():
    if not MICROPYTHON.is_file():
        pytest.fail(f"{MICROPYTHON} missing: pip install -e .[board]")
    return str(MICROPYTHON)


def _run_mp(micropython, code, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(MODULES)!r})\n" + code)
    proc = subprocess.run([micropython, str(script)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace") + proc.stderr.decode()
    return proc.stdout


def test_frames_from_the_micropython_module(micropython, tmp_path):
    out = _run_mp(micropython, """
import es_telemetry
t = es_telemetry.Telemetry()
t.hello(2, 200, 3, 20, 1, 100)
print("interleaved print")
t.stats(100, 100, 37, 30, 4, 0xA5A5A5A5, 0x0D0A, 2000000)
t.detect(0x04A5, 0xFF)
t.text("line\\r\\n")
for i in range(70000):  # wraps the 16-bit sequence number
    t.seq = (t.seq + 1) & 0xFFFF
t.end(2, 1234, 1)
""", tmp_path)
    dec, frames = _decode_all(out, 11)
    assert [f.name for f in frames] == ["hello", "stats", "detect", "text", "end"]
    assert frames[0].fields == dict(stream=2, hop_samples=160, rate_hz=16000, cutoff=200,
                                    window=3, refractory=20, vad=1, stats_every=100)
    assert frames[1]["us_sum"] == 0xA5A5A5A5 and frames[1]["us_max"] == 0x0D0A
    assert frames[2].fields == {"hop": 0x04A5, "score": 255}
    assert frames[3]["text"] == "line\r\n"
    assert frames[4].fields == {"stream": 2, "hops": 1234, "detections": 1}
    assert dec.corrupt == 0 and dec.dropped == 70000 % 65536
    assert dec.take_text() == "interleaved print\n"


# A test double with earshot.Detector's interface: "detects" a hop whose second sample is
# 0x7F00 and reports that sample's high byte as the probability. It allocates nothing.
FAKE_DETECTOR = """
import es_loop, es_telemetry, micropython
class FakeDetector:
    def __init__(self):
        self.hops = self.dets = 0
    def reset(self):
        self.hops = self.dets = 0
    def run(self, samples, probs, flags):
        n = len(samples) // 320
        d = 0
        for i in range(n):
            probs[i] = samples[i * 320 + 3]
            flags[i] = 0
            if samples[i * 320 + 3] == 0x7F:
                flags[i] = 8
                d += 1
        self.hops += n
        self.dets += d
        return d
    def stats(self):
        return (self.hops, self.hops // 2, self.dets, self.hops // 4)
"""


def test_loop_telemetry_from_a_file_source(micropython, tmp_path):
    import numpy as np

    # 437 hops and 77 samples; detections planted at hops 5, 250 and the partial last hop.
    x = np.zeros(437 * 160 + 77, np.int16)
    for hop in (5, 250, 437):
        x[hop * 160 + 1] = 0x7F00
    raw = tmp_path / "mic.raw"
    raw.write_bytes(x.astype("<i2").tobytes())
    out = _run_mp(micropython, FAKE_DETECTOR + f"""
import es_audio
loop = es_loop.Loop(FakeDetector(), es_telemetry.Telemetry(), block_hops=10, stats_every=100)
print(loop.run(es_audio.FileSource({str(raw)!r}), 4, (200, 3, 20, 1)))
""", tmp_path)
    dec, frames = _decode_all(out)
    assert dec.corrupt == 0 and dec.dropped == 0
    dets = [f["hop"] for f in frames if f.kind == T.DETECT]
    assert dets == [5, 250, 437]
    stats = [f for f in frames if f.kind == T.STATS]
    assert [f["hop"] for f in stats] == [100, 200, 300, 400, 438]
    assert sum(f["hops"] for f in stats) == 438
    assert sum(f["vad_hops"] for f in stats) == 438 // 4
    assert all(f["mem_free"] > 0 for f in stats)
    assert frames[-1].fields == {"stream": 4, "hops": 438, "detections": 3}
    assert dec.take_text().strip() == "(438, 3)"


def test_loop_allocates_nothing_per_block(micropython, tmp_path):
    # The source locks the heap from the 2nd block until the last: any allocation in the
    # loop's steady state (no frames due: stats_every is beyond the run) raises MemoryError.
    out = _run_mp(micropython, FAKE_DETECTOR + """
class Source:
    def __init__(self, blocks):
        self.i = 0
        self.blocks = blocks
    def readinto(self, buf):
        self.i += 1
        if self.i == 2:
            micropython.heap_lock()
        if self.i == self.blocks:
            micropython.heap_unlock()
        return len(buf) if self.i <= self.blocks else 0
loop = es_loop.Loop(FakeDetector(), es_telemetry.Telemetry(), block_hops=10, stats_every=10000)
print(loop.run(Source(60), 0, (1, 1, 1, 1)))
""", tmp_path)
    assert out.endswith(b"(600, 0)\n")


def test_wav_source_checks_format(micropython, tmp_path):
    import numpy as np

    from earshot.audio import write

    write(tmp_path / "ok.wav", np.arange(1000, dtype=np.int16))
    import soundfile as sf

    sf.write(str(tmp_path / "st.wav"), np.zeros((100, 2), np.int16), 16000, subtype="PCM_16")
    out = _run_mp(micropython, f"""
import es_audio
s = es_audio.FileSource({str(tmp_path / "ok.wav")!r})
buf = bytearray(640)
n = s.readinto(buf)
print(n, buf[2], buf[3])
total = n
while True:
    n = s.readinto(buf)
    if not n:
        break
    total += n
print(total)
try:
    es_audio.FileSource({str(tmp_path / "st.wav")!r})
except ValueError as e:
    print("ValueError", e)
""", tmp_path)
    lines = out.decode().splitlines()
    assert lines[0] == "640 1 0"
    assert lines[1] == "2000"
    assert lines[2].startswith("ValueError") and "2 channel(s)" in lines[2]


def test_loop_calls_on_wake_per_detection_and_survives_its_errors(micropython, tmp_path):
    """es_loop's maker hook: on_wake(hop, score) once per DETECT frame, with the same hop and
    score; an exception in it is printed and the loop goes on; a non-callable is refused."""
    import numpy as np

    x = np.zeros(438 * 160, np.int16)
    for hop in (5, 250, 437):
        x[hop * 160 + 1] = 0x7F00
    raw = tmp_path / "mic.raw"
    raw.write_bytes(x.astype("<i2").tobytes())
    out = _run_mp(micropython, FAKE_DETECTOR + f"""
import es_audio
heard = []
def on_wake(hop, score):
    heard.append((hop, score))
    if hop == 250:
        raise RuntimeError('maker bug')
loop = es_loop.Loop(FakeDetector(), es_telemetry.Telemetry(), block_hops=10, stats_every=100,
                    on_wake=on_wake)
print(loop.run(es_audio.FileSource({str(raw)!r}), 0, (200, 3, 20, 1)))
print('HEARD', heard, loop.wake_errors)
try:
    es_loop.Loop(FakeDetector(), es_telemetry.Telemetry(), on_wake=1)
except TypeError as e:
    print('ERR', e)
""", tmp_path)
    dec, frames = _decode_all(out)
    dets = [(f["hop"], f["score"]) for f in frames if f.kind == T.DETECT]
    assert [h for h, _ in dets] == [5, 250, 437]
    text = dec.take_text()
    assert f"HEARD {dets} 1".replace(" ", "") in text.replace(" ", "")
    assert "RuntimeError: maker bug" in text
    assert "(438, 3)" in text
    assert "ERR on_wake must be callable" in text


def test_examples_compile_and_use_the_hook():
    """Each examples/ script is valid Python and starts the loop with on_wake."""
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
    assert {p.name for p in examples} >= {"print_on_wake.py", "led_on_wake.py",
                                          "mqtt_on_wake.py"}
    for p in examples:
        src = p.read_text()
        compile(src, str(p), "exec")
        assert "es_loop.start(on_wake=on_wake)" in src, p.name
