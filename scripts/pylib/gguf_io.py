"""GGUF v3 writer/reader and ggml's reference Q8_0 / Q4_0 quantizers (numpy).

Layout (ggml docs/gguf.md): "GGUF" magic, u32 version 3, u64 tensor count,
u64 metadata count, the metadata (key string, u32 value type, value), the
tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml
type, u64 offset into the data section), padding to general.alignment, then
the data section; every tensor starts at a multiple of the alignment.
Strings are u64 length + UTF-8 bytes; arrays are u32 element type, u64 count.
"""
import mmap
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# gguf value types
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
           FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
_VT_NAMES = {v: n for n, v in dict(UINT8=UINT8, INT8=INT8, UINT16=UINT16, INT16=INT16, UINT32=UINT32,
                                   INT32=INT32, FLOAT32=FLOAT32, BOOL=BOOL, STRING=STRING, ARRAY=ARRAY,
                                   UINT64=UINT64, INT64=INT64, FLOAT64=FLOAT64).items()}

# ggml tensor types: id, (elements per block, bytes per block)
GGML_TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q8_0": (8, 32, 34),
              "BF16": (30, 1, 2)}
GGML_TYPE_NAMES = {v[0]: k for k, v in GGML_TYPES.items()}
# llama_ftype values written as general.file_type
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "bf16": 32}


def tensor_nbytes(shape, ggml_type):
    _, blk, size = GGML_TYPES[ggml_type]
    n = int(np.prod(shape, dtype=np.int64))
    if shape[-1] % blk:
        raise ValueError(f"row length {shape[-1]} not a multiple of {blk} for {ggml_type}")
    return n // blk * size


def _roundf(x):
    """C roundf: halves away from zero (numpy's round is half-to-even); exact,
    unlike floor(|x| + 0.5) which rounds 0.49999997 up in float32."""
    a = np.abs(x)
    fl = np.floor(a)
    return np.sign(x) * (fl + np.floor(2 * (a - fl)))


def quantize_q8_0(x):
    """quantize_row_q8_0_ref: d = amax/127 (fp16), q = roundf(x/d). x [..., k*32] f32."""
    blocks = np.asarray(x, np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = _roundf(blocks * inv).astype(np.int8)
    out = np.concatenate([d.astype("<f2").view(np.uint8), q.view(np.uint8)], axis=1)
    return out.reshape(*np.shape(x)[:-1], -1)


def quantize_q4_0(x):
    """quantize_row_q4_0_ref: max = the signed value of largest magnitude (first
    one on ties), d = max/-8 (fp16), q = min(15, (int)(x/d + 8.5)); byte j
    holds element j in the low nibble and element j+16 in the high nibble."""
    blocks = np.asarray(x, np.float32).reshape(-1, 32)
    imax = np.abs(blocks).argmax(axis=1)[:, None]
    mx = np.take_along_axis(blocks, imax, axis=1)
    d = mx / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.minimum(15, np.trunc(blocks * inv + np.float32(8.5))).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << np.uint8(4))
    out = np.concatenate([d.astype("<f2").view(np.uint8), packed], axis=1)
    return out.reshape(*np.shape(x)[:-1], -1)


def dequantize(raw, ggml_type, shape):
    """Bytes of a tensor -> float32 array of `shape` (torch order)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if ggml_type == "F32":
        return buf.view("<f4").reshape(shape).copy()
    if ggml_type == "F16":
        return buf.view("<f2").astype(np.float32).reshape(shape)
    if ggml_type == "BF16":
        return (buf.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    b = buf.reshape(-1, GGML_TYPES[ggml_type][2])
    d = b[:, :2].copy().view("<f2").astype(np.float32)
    if ggml_type == "Q8_0":
        q = b[:, 2:].view(np.int8).astype(np.float32)
    elif ggml_type == "Q4_0":
        qs = b[:, 2:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8
    else:
        raise ValueError(ggml_type)
    return (q * d).reshape(shape)


def encode_tensor(x, ggml_type):
    """float32 rows -> the bytes ggml stores for them."""
    x = np.asarray(x, np.float32)
    if ggml_type == "F32":
        return x.astype("<f4")
    if ggml_type == "F16":
        return x.astype("<f2")
    if ggml_type == "BF16":
        u = x.view(np.uint32)
        return ((u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16).astype("<u2")
    if ggml_type == "Q8_0":
        return quantize_q8_0(x)
    if ggml_type == "Q4_0":
        return quantize_q4_0(x)
    raise ValueError(ggml_type)


def _pack_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _pack_value(vtype, value):
    if vtype == STRING:
        return _pack_string(value)
    if vtype == ARRAY:
        etype, items = value
        out = [struct.pack("<IQ", etype, len(items))]
        if etype == STRING:
            out.extend(_pack_string(s) for s in items)
        else:
            out.append(np.asarray(items, dtype=np.dtype(_SCALAR[etype])).tobytes())
        return b"".join(out)
    return struct.pack(_SCALAR[vtype], value)


class Writer:
    """Two phases: declare metadata and tensors (shape + type), then write(),
    which asks produce(name) for each tensor's bytes in declaration order."""

    def __init__(self):
        self.kv = []       # (key, vtype, value)
        self.tensors = []  # (name, shape, ggml_type)

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def add_tensor(self, name, shape, ggml_type):
        self.tensors.append((name, tuple(shape), ggml_type))

    def write(self, path, produce):
        offsets, off = [], 0
        for _, shape, t in self.tensors:
            offsets.append(off)
            off += -(-tensor_nbytes(shape, t) // ALIGNMENT) * ALIGNMENT
        head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, vtype, value in self.kv:
            head += [_pack_string(key), struct.pack("<I", vtype), _pack_value(vtype, value)]
        for (name, shape, t), o in zip(self.tensors, offsets):
            ne = list(reversed(shape))  # ggml: ne[0] is the innermost (row) dimension
            head += [_pack_string(name), struct.pack("<I", len(ne)), struct.pack(f"<{len(ne)}Q", *ne),
                     struct.pack("<IQ", GGML_TYPES[t][0], o)]
        blob = b"".join(head)
        with open(path, "wb") as f:
            f.write(blob + b"\0" * (-len(blob) % ALIGNMENT))
            for (name, shape, t), o in zip(self.tensors, offsets):
                n = 0
                for chunk in produce(name):
                    b = memoryview(np.ascontiguousarray(chunk)).cast("B")
                    f.write(b)
                    n += len(b)
                if n != tensor_nbytes(shape, t):
                    raise RuntimeError(f"{name}: wrote {n} bytes, expected {tensor_nbytes(shape, t)}")
                f.write(b"\0" * (-n % ALIGNMENT))


class Reader:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:  # mapped: multi-GB files are read lazily
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._d, self._p = data, 0
        if data[:4] != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        self._p = 4
        self.version, n_tensors, n_kv = self._u("<IQQ")
        self.kv, self.kv_types = {}, {}
        for _ in range(n_kv):
            key = self._str()
            (vtype,) = self._u("<I")
            self.kv[key] = self._value(vtype)
            self.kv_types[key] = vtype
        align = self.kv.get("general.alignment", ALIGNMENT)
        self.tensors = []
        for _ in range(n_tensors):
            name = self._str()
            (nd,) = self._u("<I")
            ne = self._u(f"<{nd}Q")
            t, off = self._u("<IQ")
            self.tensors.append({"name": name, "ne": list(ne), "type": GGML_TYPE_NAMES.get(t, str(t)),
                                 "offset": off})
        self.data_start = self._p + (-self._p % align)
        self.alignment = align

    def _u(self, fmt):
        v = struct.unpack_from(fmt, self._d, self._p)
        self._p += struct.calcsize(fmt)
        return v

    def _str(self):
        (n,) = self._u("<Q")
        s = self._d[self._p:self._p + n].decode("utf-8")
        self._p += n
        return s

    def _value(self, vtype):
        if vtype == STRING:
            return self._str()
        if vtype == ARRAY:
            etype, n = self._u("<IQ")
            return [self._value(etype) for _ in range(n)] if etype in (STRING, ARRAY) else \
                list(self._u(f"<{n}{_SCALAR[etype][1]}"))
        return self._u(_SCALAR[vtype])[0]

    def tensor(self, name):
        """-> float32 array in torch order (dequantized)."""
        t = next(x for x in self.tensors if x["name"] == name)
        shape = tuple(reversed(t["ne"]))
        start = self.data_start + t["offset"]
        raw = self._d[start:start + tensor_nbytes(shape, t["type"])]
        return dequantize(raw, t["type"], shape)

    def validate(self):
        """Problems a loader would reject: misaligned or out-of-file tensors."""
        errors = []
        for t in self.tensors:
            n = tensor_nbytes(tuple(reversed(t["ne"])), t["type"])
            if t["offset"] % self.alignment:
                errors.append(f"{t['name']}: offset {t['offset']} not aligned")
            if self.data_start + t["offset"] + n > len(self._d):
                errors.append(f"{t['name']}: data past the end of the file")
        return errors


def dump(path, out):
    r = Reader(path)
    print(f"{path}: GGUF v{r.version}, {len(r.kv)} metadata, {len(r.tensors)} tensors, "
          f"data at {r.data_start}", file=out)
    for k, v in r.kv.items():
        vt = _VT_NAMES[r.kv_types[k]]
        if isinstance(v, list):
            shown = ", ".join(repr(x) for x in v[:6]) + (", ..." if len(v) > 6 else "")
            print(f"  {k:45s} {vt}[{len(v)}] [{shown}]", file=out)
        else:
            s = repr(v)
            print(f"  {k:45s} {vt} {s if len(s) < 100 else s[:97] + '...'}", file=out)
    for t in r.tensors:
        print(f"  {t['name']:32s} {t['type']:5s} ne={t['ne']} offset={t['offset']}", file=out)
    for e in r.validate():
        print(f"  ERROR {e}", file=out)
    return r
