"""A fast reader of a GGUF file's key/values and tensor shapes (no tensor data).

gguf-py's ``GGUFReader`` builds numpy memmap views for every part of every field: on a 128k-token
vocabulary that is ~1.5 million small arrays and tens of seconds.  The doctor needs only the
values, so this reads the header directly, following the format as gguf-py and llama.cpp write it
(``GGUF`` magic, version 2/3, little-endian; values typed 0-12, arrays of any of them).  The test
suite checks that it returns exactly what ``GGUFReader(...).fields[k].contents()`` returns.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}


class GGUFError(ValueError):
    pass


def read_gguf_header(path: str | Path) -> tuple[dict[str, Any], dict[str, tuple[tuple[int, ...], int]]]:
    """(key -> value, tensor name -> (shape in ggml order, ggml type))."""
    import mmap

    import numpy as np

    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        buf = memoryview(mm)
        if bytes(buf[:4]) != b"GGUF":
            raise GGUFError("not a GGUF file (bad magic)")
        version = struct.unpack_from("<I", buf, 4)[0]
        if version not in (2, 3):
            raise GGUFError(f"GGUF version {version} is not supported (2 or 3)")
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
        pos = 24

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
            return bytes(buf[pos:pos + n]).decode("utf-8", "replace"), pos + n

        def value(t: int, pos: int) -> tuple[Any, int]:
            if t == 8:
                return string(pos)
            if t == 9:
                et, n = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if et == 8:
                    out = []
                    for _ in range(n):
                        s, pos = string(pos)
                        out.append(s)
                    return out, pos
                if et in _NP:
                    arr = np.frombuffer(buf, dtype=_NP[et], count=n, offset=pos)
                    return arr.tolist(), pos + arr.nbytes
                out = []
                for _ in range(n):
                    v, pos = value(et, pos)
                    out.append(v)
                return out, pos
            fmt = _SCALARS.get(t)
            if fmt is None:
                raise GGUFError(f"unknown GGUF value type {t}")
            return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)

        kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (t,) = struct.unpack_from("<I", buf, pos)
            kv[key], pos = value(t, pos + 4)
        tensors: dict[str, tuple[tuple[int, ...], int]] = {}
        for _ in range(n_tensors):
            name, pos = string(pos)
            (nd,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{nd}Q", buf, pos + 4)
            pos += 4 + 8 * nd
            ttype, _off = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            tensors[name] = (tuple(int(d) for d in dims), ttype)
        del buf
        return kv, tensors
    except struct.error as e:
        raise GGUFError(f"truncated GGUF header: {e}") from None
    finally:
        mm.close()
