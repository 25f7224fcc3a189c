"""`earshot monitor` and `earshot plot` against the virtual board: a recorded session, garbage
on the line, the port closed and reopened (the board restarted on the same link path), a
real detector session, and the PNG."""

import json
import threading
import time

import numpy as np
import pytest

from earshot import cli
from earshot.board import deploy
from earshot.board.monitor import CSV_COLUMNS, Monitor, Recorder, RecordError, read_recording
from earshot.board.plot import PlotError, plot, timeline
from earshot.board.vboard import VirtualBoard

# Runs at boot on the board (main.py): waits for the monitor to attach, then sends a stream
# of frames through the real es_telemetry, with garbage and a cut-short frame between them.
STUB_MAIN = """
import sys, time, es_telemetry
out = getattr(sys.stdout, "buffer", sys.stdout)
try:
    boot = int(open("boots").read())
except OSError:
    boot = 0
open("boots", "w").write(str(boot + 1))
time.sleep_ms(1200)
t = es_telemetry.Telemetry(out)
t.hello(boot, 200, 3, 150, 1, 100)
for i in range(20):
    t.stats((i + 1) * 100, 100, 10 * (i % 4), 5 * (i % 4), i // 5, 5000 + i, 90, 100000 - i)
    if i % 5 == 4:
        t.detect((i + 1) * 100 - 10, 230)
    if i == 7:
        out.write(b"\\xa5\\x45\\x01\\x02\\x05\\x00garbage\\r\\n")
    if i == 9:
        out.write(b"noise \\x00\\xff\\x7d\\x7d REPL text\\r\\n")
    time.sleep_ms(20)
t.end(boot, 2000, 4)
"""


def _wait(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _ends(rows, stream):
    return any(r["kind"] == "end" and r["stream"] == stream for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_monitor_records_survives_garbage_and_a_board_restart(tmp_path, suffix):
    flash = tmp_path / "flash"
    flash.mkdir()
    for name in ("es_telemetry.py", "es_const.py"):  # es_telemetry takes the hop from es_const
        (flash / name).write_bytes((deploy.MODULES_DIR / name).read_bytes())
    (flash / "main.py").write_text(STUB_MAIN)
    link = tmp_path / "board.tty"
    rec = Recorder(tmp_path / f"session{suffix}")
    ends = []
    mon = Monitor(str(link), record=rec,
                  on_frame=lambda f: ends.append(f) if f.name == "end" else None)  # fmt: skip
    # The monitor starts before the port exists and waits for it.
    th = threading.Thread(target=mon.run, kwargs={"duration": 90}, daemon=True)
    th.start()
    try:
        time.sleep(0.5)
        assert not mon.connected
        with VirtualBoard(flash, link=link):
            assert _wait(lambda: len(ends) == 1), "first session never ended"
        # The port is gone: the monitor notices and waits for it to come back.
        assert _wait(lambda: mon.reconnects == 1 and not mon.connected)
        with VirtualBoard(flash, link=link):
            assert _wait(lambda: len(ends) == 2), "no frames after the board came back"
    finally:
        mon.stop()
        th.join(10)
        rec.close()
    assert mon.corrupt >= 1 and mon.dropped == 0
    rows = read_recording(rec.path)
    assert _ends(rows, 0) and _ends(rows, 1)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("hello") == 2 and kinds.count("stats") == 40
    assert kinds.count("detect") == 8
    # open, lost (first board stopped), open (second board), maybe lost (it stopped too)
    assert [r["event"] for r in rows if r["kind"] == "port"][:3] == ["open", "lost", "open"]
    stats = [r for r in rows if r["kind"] == "stats"]
    assert [s["us_sum"] for s in stats[:20]] == list(range(5000, 5020))
    assert all(r["score"] == 230 for r in rows if r["kind"] == "detect")
    # The plot: both streams one after the other on the audio clock, 8 detections.
    tl = timeline(rows)
    assert len(tl["detections"]) == 8 and tl["seconds"] == pytest.approx(40.0)
    assert [round(t, 2) for t, _ in tl["detections"][:2]] == [4.91, 9.91]
    assert tl["detections"][4][0] == pytest.approx(20 + 4.91)
    png = plot(rows, tmp_path / "session.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.slow
def test_monitor_a_real_detector_session_and_plot_it_from_the_cli(tmp_path, capsys):
    from earshot import democlip

    if not deploy.mpy_path("x64").is_file():
        pytest.skip("build/x64/_earshot.mpy absent (make build)")
    try:
        clip = democlip.make(seed=0, snr_db=15.0)
    except democlip.DemoClipError as exc:
        pytest.skip(str(exc))
    flash = tmp_path / "flash"
    link = tmp_path / "board.tty"
    with VirtualBoard(flash, link=link) as board:
        cfg = {"autostart": True, "source": "file", "stats_every": 50,
               "file": {"path": "mic.raw", "realtime": False}}  # fmt: skip
        deploy.deploy(board.port, config=cfg)
    samples = np.concatenate([clip.samples, np.zeros((-len(clip.samples)) % 160, np.int16)])
    (flash / "mic.raw").write_bytes(samples.astype("<i2").tobytes())
    (flash / "boot.py").write_text("import time\ntime.sleep_ms(1500)  # let the monitor attach\n")
    out = tmp_path / "real.csv"
    result = {}

    def run_monitor():
        result["rc"] = cli.main(["monitor", "--port", str(link), "--record", str(out),
                                 "--duration", "15", "--quiet"])  # fmt: skip

    th = threading.Thread(target=run_monitor, daemon=True)
    th.start()
    with VirtualBoard(flash, link=link):
        assert _wait(lambda: out.is_file() and _ends(read_recording(out), 0), 60)
        th.join(40)
    assert result["rc"] == 0
    rows = read_recording(out)
    end = next(r for r in rows if r["kind"] == "end")
    assert end["hops"] == len(samples) // 160
    assert sum(r["hops"] for r in rows if r["kind"] == "stats") == end["hops"]
    hello = next(r for r in rows if r["kind"] == "hello")
    assert hello["rate_hz"] == 16000 and hello["stats_every"] == 50
    assert "frames:" in capsys.readouterr().out
    png = tmp_path / "real.png"
    assert cli.main(["plot", str(out), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_recordings_reject_bad_input(tmp_path):
    with pytest.raises(RecordError, match="record to a .jsonl or .csv"):
        Recorder(tmp_path / "x.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "port", "event": "open"}\nnot json\n')
    with pytest.raises(RecordError, match="bad.jsonl:2: not JSON"):
        read_recording(bad)
    csv = tmp_path / "bad.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(RecordError, match="no 'kind' column"):
        read_recording(csv)
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"kind": "port", "event": "open", "t": 0}) + "\n")
    with pytest.raises(PlotError, match="nothing to plot"):
        plot(read_recording(empty), tmp_path / "x.png")
    assert cli.main(["plot", str(empty)]) == 1
    assert CSV_COLUMNS[:3] == ["t", "kind", "seq"] and "mem_free" in CSV_COLUMNS


_STATS = {"kind": "stats", "seq": 1, "hop": 100, "hops": 100, "vad_hops": 10, "model_hops": 5,
          "detections": 0, "us_sum": 4000, "us_max": 90, "mem_free": 50000}  # fmt: skip
_HELLO = {"kind": "hello", "seq": 0, "stream": 0, "hop_samples": 160, "rate_hz": 16000,
          "cutoff": 240, "window": 3, "refractory": 25, "vad": 1, "stats_every": 100}  # fmt: skip


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"42\n", "a row is a JSON object, not int"),
        (b'{"kind": "port", "event": "open"}\n\xff\n', "not UTF-8 text"),
        (b'{"kind":"stats","hop":10}\n', "a stats row without 'hops'"),
        (json.dumps({**_STATS, "hop": "abc"}).encode(), "stats hop='abc' is not an integer"),
        (json.dumps({k: v for k, v in _HELLO.items() if k != "cutoff"}).encode(),
         "a hello row without 'cutoff'"),
        (json.dumps({**_STATS, "us_sum": float("nan")}).encode(), "us_sum=nan is not an"),
        (json.dumps({**_STATS, "us_max": float("inf")}).encode(), "us_max=inf is not an"),
        (json.dumps({**_STATS, "vad_hops": -3}).encode(), "vad_hops=-3 is not an integer"),
        (json.dumps({**_HELLO, "cutoff": 300}).encode(), "cutoff=300 is not an integer in 0..255"),
        (json.dumps({**_STATS, "t": -1.0}).encode(), "t=-1.0 is not a time"),
        (json.dumps({"kind": "bogus"}).encode(), "unknown row kind 'bogus'"),
    ],
)
def test_plot_refuses_a_bad_recording_in_one_line(tmp_path, capsys, content, problem):
    """Every malformed row: exit 1, one line on stderr naming the file, line and problem,
    nothing on stdout, no traceback, no PNG."""
    rec = tmp_path / "rec.jsonl"
    rec.write_bytes(content)
    assert cli.main(["plot", str(rec)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and f"{rec}:" in err and problem in err, err
    assert not rec.with_suffix(".png").exists()


def test_plot_refuses_a_non_png_output_and_a_missing_file(tmp_path, capsys):
    rec = tmp_path / "rec.jsonl"
    rec.write_text("\n".join(json.dumps(r) for r in (_HELLO, _STATS)) + "\n")
    assert cli.main(["plot", str(rec), "-o", str(tmp_path / "out.txt")]) == 1
    err = capsys.readouterr().err
    assert "out.txt: the plot is a PNG" in err and not (tmp_path / "out.txt").exists()
    assert cli.main(["plot", str(tmp_path / "nope.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "nope.jsonl: No such file or directory" in err and err.count("\n") == 1
    assert cli.main(["plot", str(rec)]) == 0
    assert rec.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_monitor_says_when_the_port_cannot_be_a_port(tmp_path, capsys):
    """A regular file or a baud of 0 is a usage error (exit 2); a port that never appears
    is a runtime error (exit 1) after the summary, both one line on stderr."""
    regular = tmp_path / "ttyFAKE"
    regular.write_text("")
    assert cli.main(["monitor", "--port", str(regular), "--quiet", "--duration", "0.2"]) == 2
    assert "not a serial port (a regular file)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["monitor", "--port", str(regular), "--baud", "0"])
    assert exc.value.code == 2
    assert "not a positive number" in capsys.readouterr().err
    missing = tmp_path / "ttyNONE"
    assert cli.main(["monitor", "--port", str(missing), "--quiet", "--duration", "0.3"]) == 1
    out, err = capsys.readouterr()
    assert "frames: 0 ok" in out and f"{missing} never opened" in err


def test_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    from earshot.cli import plot as plot_cli

    def boom(args):
        raise RuntimeError("something broke")

    monkeypatch.setattr(plot_cli, "handler", boom)
    assert cli.main(["plot", "x.jsonl"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("earshot plot: error: something broke") and err.count("\n") == 1
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["--debug", "plot", "x.jsonl"])
