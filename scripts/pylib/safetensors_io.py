"""Minimal safetensors reader/writer (numpy only; no `safetensors` package here).

Format (https://huggingface.co/docs/safetensors): u64 little-endian header
length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [b, e]},
"__metadata__": {str: str}}, then the raw little-endian tensor bytes; offsets
are relative to the end of the header. Like the reference writer we pad the
header with spaces to a multiple of 8 so tensor data stays 8-byte aligned.

bf16 has no numpy dtype: it is carried as uint16 bit patterns; to_f32()
widens it exactly, f32_to_bf16_bits() rounds to nearest even like torch.
"""
import json
import os
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
          "BOOL": np.bool_}
ITEMSIZE = {k: np.dtype(v).itemsize for k, v in DTYPES.items()}


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round-to-nearest-even (as torch)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def encode(x, dtype):
    """float array -> (bytes-ready array) in safetensors dtype 'F32'|'F16'|'BF16'."""
    if dtype == "F32":
        return np.ascontiguousarray(x, dtype="<f4")
    if dtype == "F16":
        return np.ascontiguousarray(x, dtype="<f2")
    if dtype == "BF16":
        return f32_to_bf16_bits(x).astype("<u2")
    raise ValueError(f"unsupported dtype {dtype}")


class SafetensorsFile:
    """Random access to one .safetensors file; tensors are read on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        self.data_start = 8 + n
        self.metadata = header.pop("__metadata__", {})
        self.entries = header

    def keys(self):
        return list(self.entries)

    def info(self, name):
        e = self.entries[name]
        return e["dtype"], tuple(e["shape"])

    def raw(self, name, rows=None):
        """The stored array (bf16 as uint16). rows=(r0, r1) reads a row range only."""
        e = self.entries[name]
        dt = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        shape = list(e["shape"])
        b, end = e["data_offsets"]
        start = self.data_start + b
        count = (end - b) // dt.itemsize
        if rows is not None:
            row = int(np.prod(shape[1:], dtype=np.int64))
            start += rows[0] * row * dt.itemsize
            count = (rows[1] - rows[0]) * row
            shape[0] = rows[1] - rows[0]
        with open(self.path, "rb") as f:
            f.seek(start)
            arr = np.fromfile(f, dtype=dt, count=count)
        return arr.reshape(shape)

    def get_f32(self, name, rows=None):
        dtype = self.entries[name]["dtype"]
        a = self.raw(name, rows)
        return bf16_bits_to_f32(a) if dtype == "BF16" else a.astype(np.float32)


def write_streaming(path, specs, produce, metadata=None):
    """Writes a safetensors file without holding more than one tensor.

    specs: [(name, dtype, shape)] in file order. produce(name) yields numpy
    chunks (already in the stored dtype, C order) whose bytes concatenate to
    the tensor. Returns the number of data bytes written.
    """
    header, off = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in specs:
        n = int(np.prod(shape, dtype=np.int64)) * ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-(8 + len(blob)) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, dtype, shape in specs:
            want = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            got = 0
            for chunk in produce(name):
                b = memoryview(np.ascontiguousarray(chunk)).cast("B")
                f.write(b)
                got += len(b)
            if got != want:
                raise RuntimeError(f"{name}: produced {got} bytes, expected {want}")
    os.replace(tmp, path)
    return off
