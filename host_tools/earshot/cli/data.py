"""``earshot data synth``: render synthetic positives and negatives (TTS) into a folder;
``earshot data fetch``: download public negative corpora, checked and resumable."""

import argparse
import json

HELP = """\
Writes into --out:
  positives/pos_NNNNN.wav   the wake word (16 kHz mono int16), kept by the sanity filter
  negatives/neg_NNNNN.wav   confusable words and general sentences, no wake word
  passages/pas_NNNNN.wav    long general speech (fortunes read in many voices; --passages)
  index.json                {"wake_word", "seed", "positives": [{"file", "end", "spec"}],
                             "negatives": [{"file", "spec"}], "passages": [{"file", "spec"}],
                             "dropped": [{"spec", "reason"}]}
"end" is the sample index just after the wake word; "spec" is the TTS recipe (engine, voice,
text, rate/pitch/...; earshot.train.synth). Clip i is drawn from numpy.random.default_rng([seed, ...,
i]), so the same seed gives the same clips whatever --workers is. Rendered audio is cached in
--out/.cache and reused by a rerun with the same specs and TTS stack (package versions).
`earshot train --synth-dir DIR` trains on these clips instead of rendering its own.
"""

FETCH_HELP = """\
Each corpus is a registry entry (name, URL, sha256, size, licence): the file is downloaded
into --dest through <file>.part, resumed from where it stopped when run again (HTTP Range),
checked by size and sha256, and unpacked into --dest/<name>/ with a SOURCE.json. Training
reads the audio there as the real-negative source "corpora" (used automatically when the
shared recordings are absent). The built-in registry is empty: entries come from a JSON file
(--registry or $EARSHOT_CORPORA_REGISTRY) whose sizes and checksums were measured on the
files (docs/training.md, "Public negative corpora").
"""


def register(sub):
    p = sub.add_parser(
        "data",
        help="synthesise training/evaluation audio",
        description="Data tools.",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = dsub.add_parser(
        "synth",
        help="render TTS positives and negatives into a folder",
        description="Render synthetic speech (earshot.train.synth) into wav files and a JSON index.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--wake-word", required=True, metavar="TEXT", help='e.g. "alexa"')
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    s.add_argument("--positives", type=int, default=200, metavar="N", help="positive specs")
    s.add_argument("--negatives", type=int, default=200, metavar="N", help="negative specs")
    s.add_argument("--passages", type=int, default=0, metavar="N",
                   help="long negative passages (Debian fortunes, 3-20 s each; default 0)")
    s.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    s.add_argument("--workers", type=int, metavar="W", help="processes (default: all cores)")
    s.add_argument("--no-check", action="store_true", help="keep positives the filter drops")
    s.set_defaults(func=run_synth)
    f = dsub.add_parser(
        "fetch",
        help="download public negative corpora (checked, resumable)",
        description="Download public negative corpora of a registry (earshot.train.fetch).",
        epilog=FETCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("names", nargs="*", metavar="NAME", help='registry names, or "all"')
    f.add_argument("--registry", metavar="JSON", help="registry file (list of entries)")
    f.add_argument("--dest", metavar="DIR",
                   help="corpora folder (default $EARSHOT_CORPORA or ~/.cache/earshot/corpora)")
    f.add_argument("--list", action="store_true", help="list the registry and exit")
    f.set_defaults(func=run_fetch)


def synth_to_folder(
    wake_word: str,
    out,
    positives: int,
    negatives: int,
    seed: int,
    workers: int,
    check: bool = True,
    log=None,
    passages: int = 0,
) -> dict:
    """Render ``positives`` + ``negatives`` + ``passages`` specs into ``out`` (layout in HELP);
    returns the index dict that was written to ``out/index.json``. Raises ValueError for bad
    counts or an empty wake word, SynthError when a TTS engine (or, with passages, the fortune
    files) is missing."""
    from pathlib import Path

    import soundfile as sf

    from earshot.audio import SAMPLE_RATE_HZ
    from earshot.train import synth, texts

    wake_word = " ".join(wake_word.split())
    if not wake_word:
        raise ValueError("--wake-word is empty")
    if min(positives, negatives, passages) < 0 or positives + negatives + passages == 0:
        raise ValueError("--positives, --negatives and --passages must be >= 0, not all 0")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    cache = out / ".cache"
    # another phrase than alexa: passages without it and its near confusables (texts.forbidden)
    passage_texts = (None if wake_word.lower() == "alexa" or not passages
                     else texts.passage_pool(("fortunes",), wake_word, "all"))
    pos = synth.generate(
        synth.positive_specs(positives, seed, wake_word),
        cache / f"pos-s{seed}",
        check=check,
        workers=workers,
        progress="positives",
        log=log,
    )
    neg = synth.generate(
        synth.negative_specs(negatives, seed, wake_word=wake_word),
        cache / f"neg-s{seed}",
        check=False,
        workers=workers,
        progress="negatives",
        log=log,
    )
    pas = synth.generate(
        synth.passage_specs(passages, seed, wake_word, texts=passage_texts) if passages else [],
        cache / f"pas-s{seed}",
        check=False,
        workers=workers,
        progress="passages",
        log=log,
    )
    index = {
        "wake_word": wake_word,
        "seed": seed,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "positives": [],
        "negatives": [],
        "passages": [],
        "dropped": [],
    }
    for kind, data in (("positives", pos), ("negatives", neg), ("passages", pas)):
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.wav"):  # a rerun with fewer clips leaves no strays
            old.unlink()
        for k, (x, spec) in enumerate(zip(data["audio"], data["specs"])):
            name = f"{kind}/{kind[:3]}_{k:05d}.wav"
            sf.write(str(out / name), x, SAMPLE_RATE_HZ, subtype="PCM_16")
            entry = {"file": name, "spec": spec}
            if kind == "positives":
                entry["end"] = int(data["end"][k])
            index[kind].append(entry)
        index["dropped"] += [{"spec": s, "reason": r} for s, r in data["dropped"]]
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def run_synth(args) -> int:
    import os

    from rich.console import Console

    from earshot.train.synth import SynthError

    err = Console(stderr=True, soft_wrap=True)
    workers = args.workers or os.cpu_count() or 1
    try:
        index = synth_to_folder(
            args.wake_word,
            args.out,
            args.positives,
            args.negatives,
            args.seed,
            workers,
            check=not args.no_check,
            log=lambda m: err.print(m, highlight=False),
            passages=args.passages,
        )
    except (ValueError, SynthError, OSError) as exc:
        err.print(f"earshot data synth: {exc}", highlight=False, markup=False, style="red")
        return 2
    print(
        f"{args.out}: {len(index['positives'])} positives, {len(index['negatives'])} "
        f"negatives, {len(index['passages'])} passages, {len(index['dropped'])} dropped by the "
        "sanity filter (index.json lists each clip's recipe)"
    )
    return 0


def run_fetch(args) -> int:
    from rich.console import Console

    from earshot.train import fetch

    err = Console(stderr=True, soft_wrap=True)

    def log(m):
        err.print(m, highlight=False, markup=False)

    try:
        registry = fetch.load_registry(args.registry)
    except ValueError as exc:
        err.print(f"earshot data fetch: {exc}", highlight=False, markup=False, style="red")
        return 2
    if args.list or not args.names:
        if not registry:
            print("the registry is empty: give --registry FILE (docs/training.md, "
                  "\"Public negative corpora\")")
        for e in registry.values():
            print(f"{e.name}\t{e.size} B\t{e.licence}\t{e.url}")
        return 0 if args.list or registry else 2
    names = list(registry) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in registry]
    if unknown:
        err.print(f"earshot data fetch: not in the registry: {', '.join(unknown)} (known: "
                  f"{', '.join(registry) or 'none'})", highlight=False, markup=False,
                  style="red")
        return 2
    for name in names:
        try:
            fetch.fetch(registry[name], args.dest, log)
        except (fetch.FetchError, OSError) as exc:
            err.print(f"earshot data fetch: {exc}", highlight=False, markup=False, style="red")
            return 1
    return 0
