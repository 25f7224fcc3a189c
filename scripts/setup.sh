#!/bin/sh
# Set up a fresh machine for Earshot: Debian packages the tools call, then .venv with the host
# tools and every extra. Idempotent; safe to run again. Called by `make setup`.
set -eu

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# Debian packages: the Xtensa and ARM cross compilers (build proof, code size, make dist), TTS
# engines for the synthetic data, sox, valgrind (benchmarks and memcheck), libsndfile (soundfile),
# and the real recordings of the data README's Debian packages and a few more (training negatives,
# source "debian": earshot.train.dataset.DEBIAN_SPEECH), and the English prose the long synthetic
# passages read (earshot.train.texts: fortunes, man pages, Debian documents).
# Another apt or dpkg (unattended upgrades, a second setup) holds the lock for a while: wait up
# to 10 minutes for it instead of failing at once.
APT="apt-get -o DPkg::Lock::Timeout=600"
APT_PACKAGES="gcc-xtensa-lx106 picolibc-xtensa-lx106-elf gcc-arm-none-eabi \
libnewlib-arm-none-eabi espeak-ng flite festival \
festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsndfile1 valgrind \
asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav \
asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav \
asterisk-moh-opsound-wav klettres-data codec2-examples fortunes fortunes-min \
manpages manpages-dev debian-faq debian-reference-en doc-debian clang libclang-rt-14-dev"

missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages:$missing"
        $APT update -qq
        DEBIAN_FRONTEND=noninteractive $APT install -y -qq $missing
    else
        echo "setup: missing Debian packages:$missing (run as root: apt-get install$missing)" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# constraints.txt pins the synthesis stack (see there).
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[board,train,peers,bench,test]"
# silero-vad without its torch requirement: bench/vad.py runs its bundled onnx model.
"$VENV/bin/python" -m pip install -q --no-deps "silero-vad==6.2.3"
# Kokoro's 28 English voice tables (earshot.train.voices): npm kokoro-js, pinned version and
# sha256, unpacked once into ~/.cache/earshot/ (EARSHOT_KOKORO_TABLES overrides). npm comes
# from Debian when missing. Without npm or the registry, setup still succeeds: the tables are
# then unavailable, and a config that needs them (synth.kokoro_tables "en") fails naming this.
if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing npm (Debian) for the Kokoro voice tables"
    ($APT update -qq && DEBIAN_FRONTEND=noninteractive $APT install -y -qq npm) ||
        echo "setup: could not install npm" >&2
fi
"$VENV/bin/python" -m earshot.train.voices install ||
    echo "setup: English Kokoro voice tables unavailable (see above); configs with" \
        "synth.kokoro_tables \"en\" will fail until \`python -m earshot.train.voices install\`" >&2
echo "setup: done ($VENV)"
