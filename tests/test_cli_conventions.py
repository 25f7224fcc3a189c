"""The CLI's conventions hold in every verb: ``--model`` takes a package folder or a blob,
probabilities are 0..1, ``--port`` defaults to auto (or ``$EARSHOT_PORT``), ``-o/--out`` names
every file a verb writes, and no internal program reaches the user."""

import json
import os
import pty
import threading
import tty
from types import SimpleNamespace

import pytest

from earshot import cli
from earshot.board import ports
from earshot.paths import MODELS

#: Verbs that write a file, and the dest their -o/--out fills.
WRITERS = {("export",): "out", ("adapt",): "out", ("plot",): "out", ("monitor",): "record",
           ("flash",): "merge", ("eval",): "det", ("firmware", "build"): "out",
           ("data", "synth"): "out", ("train",): "out"}  # fmt: skip
#: Verbs that take a model, and those that talk to a board.
MODEL_VERBS = [("score",), ("eval",), ("export",), ("adapt",), ("demo",), ("board",),
               ("deploy",), ("flash",), ("firmware", "build")]  # fmt: skip
PORT_VERBS = [("deploy",), ("flash",), ("monitor",), ("repl",), ("adapt",)]


def _subparser(path):
    parser = cli.build_parser()
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


def _option(parser, flag):
    return next((a for a in parser._actions if flag in a.option_strings), None)


@pytest.mark.parametrize("path", list(WRITERS), ids=" ".join)
def test_every_file_a_verb_writes_is_named_by_o_and_out(path):
    p = _subparser(path)
    short, long = _option(p, "-o"), _option(p, "--out")
    assert short is not None and short is long, path
    assert short.dest == WRITERS[path]


@pytest.mark.parametrize("path", MODEL_VERBS, ids=" ".join)
def test_every_model_option_says_package_or_blob(path):
    opt = _option(_subparser(path), "--model")
    assert opt is not None and "blob" in opt.help and ("package" in opt.help), path


@pytest.mark.parametrize("path", PORT_VERBS, ids=" ".join)
def test_every_port_option_defaults_to_auto(path):
    opt = _option(_subparser(path), "--port")
    assert opt is not None and not opt.required and opt.default is None, path
    assert "auto" in opt.help and "EARSHOT_PORT" in opt.help


def test_demo_cutoff_is_a_probability_and_the_old_scale_is_refused(capsys):
    p = _subparser(("demo",))
    assert p.parse_args(["--cutoff", "0.8"]).cutoff == 0.8
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--cutoff", "200"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "probability x 255" in err and "0.78" in err
    for bad in ("0", "1.5", "x"):
        with pytest.raises(SystemExit):
            p.parse_args(["--cutoff", bad])


def test_export_takes_a_package_its_blob_or_a_blob_alone(tmp_path, capsys):
    blob = (MODELS / "alexa" / "model.bin").read_bytes()
    alone = tmp_path / "alone.bin"
    alone.write_bytes(blob)
    for model in (MODELS / "alexa", MODELS / "alexa" / "model.bin", alone):
        out = tmp_path / "out.bin"
        assert cli.main(["export", "--format", "blob", "--model", str(model), "-o", str(out)]) == 0
        assert out.read_bytes() == blob
    assert cli.main(["export", "--model", str(MODELS / "alexa" / "model.bin"),
                     "-o", str(tmp_path / "m.tflite")]) == 0  # fmt: skip
    capsys.readouterr()
    # A .tflite lives in the package: a blob alone has none, and says so in one line.
    assert cli.main(["export", "--model", str(alone), "-o", str(tmp_path / "x.tflite")]) == 1
    err = capsys.readouterr().err
    assert "package folder" in err and err.count("\n") == 1


def _usb(device, vid, pid=0x1001, description="USB JTAG/serial"):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description)


def test_port_auto_env_and_explicit(monkeypatch, tmp_path):
    monkeypatch.delenv(ports.ENV, raising=False)
    monkeypatch.setattr(ports, "VBOARD_PORT", tmp_path / "none.tty")
    monkeypatch.setattr(ports, "usb_ports", lambda: [_usb("/dev/ttyACM0", 0x303A)])
    assert ports.resolve(None) == ports.resolve("auto") == "/dev/ttyACM0"
    assert ports.resolve("/dev/ttyUSB3") == "/dev/ttyUSB3"
    monkeypatch.setenv(ports.ENV, "/dev/ttyS9")
    assert ports.resolve(None) == "/dev/ttyS9"
    assert ports.resolve("/dev/ttyUSB3") == "/dev/ttyUSB3"  # --port wins over the variable
    monkeypatch.delenv(ports.ENV)
    # Several USB serial devices: the one with a board's vendor id; two boards: refuse.
    two = [_usb("/dev/ttyUSB0", 0x1234, description="a modem"), _usb("/dev/ttyACM0", 0x303A)]
    monkeypatch.setattr(ports, "usb_ports", lambda: two)
    assert ports.resolve(None) == "/dev/ttyACM0"
    boards = [_usb("/dev/ttyACM0", 0x303A), _usb("/dev/ttyUSB0", 0x10C4)]
    monkeypatch.setattr(ports, "usb_ports", lambda: boards)
    with pytest.raises(ports.PortError, match="several.*ttyACM0.*ttyUSB0.*--port"):
        ports.resolve(None)
    # None: the virtual board's default port when it runs, else an error.
    monkeypatch.setattr(ports, "usb_ports", lambda: [])
    with pytest.raises(ports.PortError, match="no board found"):
        ports.resolve(None)
    link = tmp_path / "flash.tty"
    os.symlink(os.devnull, link)
    monkeypatch.setattr(ports, "VBOARD_PORT", link)
    assert ports.resolve(None) == str(link)


def test_usb_ports_reads_pyserial():
    assert all(p.vid is not None for p in ports.usb_ports())  # whatever this machine has


@pytest.fixture
def echo_port(tmp_path):
    """A serial port whose device echoes every byte (a modem, a GPS, not a MicroPython board)."""
    main, sub = pty.openpty()
    tty.setraw(sub)
    link = tmp_path / "echo.tty"
    os.symlink(os.ttyname(sub), link)
    stop = threading.Event()

    def echo():
        while not stop.is_set():
            try:
                data = os.read(main, 4096)
            except OSError:
                return
            os.write(main, data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    yield str(link)
    stop.set()
    os.close(sub)
    os.close(main)


# ampy tries for about 50 s before it gives up on a port that is not a board.
@pytest.mark.parametrize("tool", ["mpremote", pytest.param("ampy", marks=pytest.mark.slow)])
def test_deploy_to_a_wrong_port_says_so_in_one_line(echo_port, capsys, tool):
    assert cli.main(["deploy", "--tool", tool, "--port", echo_port]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert echo_port in err and "MicroPython" in err
    for internal in ("PROBE", "import sys", "Traceback", "_digest", "<program>", "b'"):
        assert internal not in out + err


def test_deploy_to_a_missing_port_says_so_in_one_line(tmp_path, capsys):
    assert cli.main(["deploy", "--port", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the port" in err


def test_verbs_that_need_the_manifest_take_the_blob_inside_a_package(tmp_path):
    """eval (and export --format tflite) read the package: its blob names it too."""
    from earshot.cli import options

    assert options.package_dir(MODELS / "alexa") == MODELS / "alexa"
    assert options.package_dir(MODELS / "alexa" / "model.bin") == MODELS / "alexa"
    alone = tmp_path / "alone.bin"
    alone.write_bytes((MODELS / "alexa" / "model.bin").read_bytes())
    with pytest.raises(ValueError, match="without its package"):
        options.package_dir(alone)
    with pytest.raises(ValueError, match="not found"):
        options.package_dir(tmp_path / "none.bin")


def test_eval_takes_a_blob_alone_but_not_for_folds(tmp_path, capsys, data):
    import shutil

    pos, neg = tmp_path / "pos", tmp_path / "neg"
    pos.mkdir()
    neg.mkdir()
    shutil.copy(data / "wake-word-benchmark" / "alexa" / "0.flac", pos)
    shutil.copy(sorted((data / "wake-word-benchmark" / "computer").iterdir())[0], neg)
    alone = tmp_path / "alone.bin"
    alone.write_bytes((MODELS / "alexa" / "model.bin").read_bytes())
    results = []
    for model in (MODELS / "alexa", alone):
        argv = ["eval", "--positives", str(pos), "--negatives", str(neg), "--no-mww", "--json",
                "--model", str(model)]  # fmt: skip
        assert cli.main(argv) == 0
        results.append(json.loads(capsys.readouterr().out)["engines"])
    assert results[0]["Earshot"]["recall"] == results[1]["Earshot"]["recall"] == 1.0
    assert cli.main(["eval", "--folds", "test", "--negatives", str(neg), "--no-mww",
                     "--model", str(alone)]) == 2  # fmt: skip
    assert "blob alone" in capsys.readouterr().err
