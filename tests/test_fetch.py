"""``earshot data fetch``: corpora downloaded from a local HTTP server (no internet here), checked
by size and sha256, an interrupted download resumed with a Range request, a checksum mismatch
named, archives unpacked where training finds them."""

import hashlib
import http.server
import io
import json
import tarfile
import threading

import numpy as np
import pytest
import soundfile as sf

from earshot import cli
from earshot.train import dataset, fetch


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with Range support; ``cut`` (name -> n) sends only the
    first n bytes of the next whole-file answer for that name, then drops the connection."""

    files: dict = {}
    cut: dict = {}
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        start = 0
        rng = self.headers.get("Range")
        self.ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        n = self.cut.pop(name, None)
        if n is not None and not rng:
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Files.files, _Files.cut, _Files.ranges = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield _Files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _entry(url, data, name="tiny", **kw):
    return fetch.check_entry({"name": name, "url": url, "sha256": hashlib.sha256(data).hexdigest(),
                              "size": len(data), "licence": "CC0-1.0", **kw})


def _wav_tgz() -> bytes:
    wav = io.BytesIO()
    x = (np.random.default_rng(0).standard_normal(8000) * 3000).astype(np.int16)
    sf.write(wav, x, 16000, format="WAV", subtype="PCM_16")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as t:
        info = tarfile.TarInfo("speech/a.wav")
        info.size = len(wav.getvalue())
        t.addfile(info, io.BytesIO(wav.getvalue()))
    return out.getvalue()


def test_download_checks_and_reuses(server, tmp_path):
    files, url = server
    data = bytes(range(256)) * 1000
    files.files["c.bin"] = data
    entry = _entry(f"{url}/c.bin", data)
    path = fetch.download(entry, tmp_path, log=lambda m: None)
    assert path.read_bytes() == data and not (tmp_path / "c.bin.part").exists()
    fetch.download(entry, tmp_path, log=lambda m: None)
    assert files.ranges == [None]  # the second call found the file checked: no request


def test_interrupted_download_resumes_with_a_range(server, tmp_path):
    files, url = server
    data = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    files.files["big.bin"] = data
    files.cut["big.bin"] = 100_000
    entry = _entry(f"{url}/big.bin", data)
    with pytest.raises(fetch.FetchError, match="big.bin: download interrupted .*run the same"):
        fetch.download(entry, tmp_path, log=lambda m: None)
    part = tmp_path / "big.bin.part"
    assert 0 < part.stat().st_size < len(data)
    have = part.stat().st_size
    lines = []
    path = fetch.download(entry, tmp_path, log=lines.append)
    assert path.read_bytes() == data
    assert files.ranges == [None, f"bytes={have}-"]
    assert any(f"resuming big.bin at byte {have}" in m for m in lines)


def test_checksum_mismatch_names_the_file_and_drops_it(server, tmp_path):
    files, url = server
    files.files["bad.bin"] = b"x" * 5000
    entry = _entry(f"{url}/bad.bin", b"y" * 5000)  # same size, other content
    with pytest.raises(fetch.FetchError, match=r"bad\.bin: sha256 [0-9a-f]{64}, the registry "
                                               r"says [0-9a-f]{64}"):
        fetch.download(entry, tmp_path, log=lambda m: None)
    assert not list(tmp_path.iterdir())
    with pytest.raises(fetch.FetchError, match="missing.bin: HTTP 404"):
        fetch.download(_entry(f"{url}/missing.bin", b"z"), tmp_path, log=lambda m: None)


def test_registry_entries_are_checked(tmp_path):
    good = {"name": "a", "url": "https://example.org/a.tar.gz", "sha256": "0" * 64,
            "size": 10, "licence": "CC-BY-4.0"}
    assert fetch.check_entry(good).archive
    for bad, match in (({"sha256": "TODO"}, "sha256 must be 64"), ({"size": 0}, "size"),
                       ({"url": "ftp://x/a"}, "url"), ({"name": "../a"}, "folder name"),
                       ({"licence": ""}, "licence"), ({"extra": 1}, "unknown keys")):
        with pytest.raises(ValueError, match=match):
            fetch.check_entry({**good, **bad})
    assert fetch.REGISTRY == {}  # nothing unmeasured is built in
    reg = tmp_path / "reg.json"
    reg.write_text(json.dumps([good, good]))
    with pytest.raises(ValueError, match="registered twice"):
        fetch.load_registry(reg)


def test_cli_fetch_unpacks_where_training_reads(server, tmp_path, monkeypatch, capsys):
    files, url = server
    tgz = _wav_tgz()
    files.files["speech.tar.gz"] = tgz
    reg = tmp_path / "reg.json"
    entry = {"name": "speech", "url": f"{url}/speech.tar.gz",
             "sha256": hashlib.sha256(tgz).hexdigest(), "size": len(tgz), "licence": "CC0-1.0"}
    reg.write_text(json.dumps([entry]))
    dest = tmp_path / "corpora"
    assert cli.main(["data", "fetch", "--registry", str(reg), "--dest", str(dest),
                     "speech"]) == 0
    assert (dest / "speech" / "speech" / "a.wav").is_file()
    assert json.loads((dest / "speech" / "SOURCE.json").read_text())["sha256"] == entry["sha256"]
    assert not (dest / "speech.tar.gz").exists()
    monkeypatch.setenv("EARSHOT_CORPORA", str(dest))
    assert dataset.corpora_negatives() == [dest / "speech" / "speech" / "a.wav"]
    assert cli.main(["data", "fetch", "--registry", str(reg), "--dest", str(dest), "nope"]) == 2
    assert "not in the registry: nope" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "--registry", str(reg), "--list"]) == 0
    assert "speech" in capsys.readouterr().out
