"""The factory model's power-safe install on a board: the names and the board program.

``earshot deploy`` (:mod:`earshot.board.deploy`) copies the blob to :data:`TEMP` (mpremote's
``fs cp`` or ampy's ``put``, which empty the file first and write it in chunks) and then, in
the same connection, runs :func:`commit_code` on the board:

1. check :data:`TEMP`: its size and CRC-32 are the host's, and it is a whole blob (magic,
   header total, payload CRC-32); otherwise raise ``OSError`` and change nothing;
2. when :data:`FACTORY` is a whole blob: remove an older :data:`BACKUP`, rename
   :data:`FACTORY` to :data:`BACKUP`; when it is damaged: remove it;
3. rename :data:`TEMP` to :data:`FACTORY`;
4. when the factory model changed, remove the adapted model (:data:`ADAPTED`, or the
   config's ``adapt.save_to``) and its temp file: it was adapted from the old model; print
   :data:`MARK` ``ok <none|backup|damaged>`` (`` adapted-removed`` when step 4 removed one).

No rename replaces an existing file (FAT cannot), and each step changes one name, so a board
that loses power at any instant still holds a whole model under a name the boot code tries
(``es_loop.load_model``: the adapted model, :data:`FACTORY`, then :data:`BACKUP`), as long as
it held one before. A stale :data:`TEMP` is never loaded and is overwritten next time.
"""

from __future__ import annotations

import zlib

#: The factory model on the board, the temp file it is written through and its backup
#: (es_loop.py's TEMP_SUFFIX and BACKUP_SUFFIX; tests check they agree).
FACTORY = "model.bin"
TEMP = FACTORY + ".tmp"
BACKUP = FACTORY + ".bak"
#: Starts the line the board program prints when the model is installed.
MARK = "EARSHOT-COMMIT "
#: Where the board keeps its adapted model unless the config says otherwise
#: (es_adapt.ADAPTED, es_config's adapt.save_to).
ADAPTED = "adapted.bin"

#: MicroPython, filled in by :func:`commit_code`. _scan(p) is (size, CRC-32 of the file,
#: whole blob?) or None when p is absent; a whole blob has the magic, 16 <= total <= size and
#: the payload CRC-32 (bytes 12..total) of its header (es_model.h).
PROGRAM = """\
import os, struct
try:
    from binascii import crc32
except ImportError:
    from _earshot import crc32
def _scan(p):
    try:
        size = os.stat(p)[6]
    except OSError:
        return None
    buf = bytearray(256)
    mv = memoryview(buf)
    with open(p, 'rb') as f:
        head = f.read(16) or b''
        whole = crc32(head)
        ok = len(head) == 16 and head[:4] == b'ESMB'
        total = struct.unpack('<I', head[12:16])[0] if ok else 0
        ok = ok and 16 <= total <= size
        body = crc32(head[12:])
        left = total - 16
        while True:
            n = f.readinto(buf)
            if not n:
                break
            whole = crc32(mv[:n], whole)
            if ok and left > 0:
                k = min(n, left)
                body = crc32(mv[:k], body)
                left -= k
    ok = ok and struct.unpack('<I', head[8:12])[0] == body & 0xffffffff
    return size, whole & 0xffffffff, ok
def _sync():
    if hasattr(os, 'sync'):
        os.sync()
_t = _scan({tmp!r})
if _t is None or _t[:2] != ({size}, {crc}) or not _t[2]:
    raise OSError('{tmp} on the board is not what was sent (size, CRC-32, whole: %r; '
                  'expected {size} B, CRC-32 {crc}): model not installed' % (_t,))
_sync()
_d = _scan({dst!r})
if _d is None:
    _was = 'none'
elif _d[2]:
    if _scan({bak!r}) is not None:
        os.remove({bak!r})
    os.rename({dst!r}, {bak!r})
    _was = 'backup'
else:
    os.remove({dst!r})
    _was = 'damaged'
os.rename({tmp!r}, {dst!r})
_stale = ''
if _d is None or _d[1] != {crc}:
    for _p in ({adapted!r} + '.tmp', {adapted!r}):
        if _scan(_p) is not None:
            os.remove(_p)
            _stale = ' adapted-removed'
_sync()
print({mark!r} + 'ok ' + _was + _stale)
"""


def commit_code(blob: bytes, adapted: str = ADAPTED) -> str:
    """The board program that installs :data:`TEMP`, holding ``blob``, as :data:`FACTORY`.
    When the factory model changes, the model adapted from the old one (``adapted``, the
    config's ``adapt.save_to``) and its temp file are removed after the install, so the board
    runs the model just deployed, not an adaptation of another (step 4 of this module's
    list); the printed result then ends ``adapted-removed``."""
    return PROGRAM.format(tmp=TEMP, dst=FACTORY, bak=BACKUP, size=len(blob),
                          crc=zlib.crc32(blob), mark=MARK, adapted=adapted)  # fmt: skip


def result(output: bytes | str) -> str | None:
    """What the board program printed after :data:`MARK` (``"ok backup"``...), or None when
    it printed no such line (it did not finish)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    for line in text.splitlines():
        if line.startswith(MARK):
            return line[len(MARK) :].strip()
    return None
