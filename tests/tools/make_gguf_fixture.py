#!/usr/bin/env python3
"""Make tests/fixtures/gguf_fixture.gguf with the PyPI `gguf` package (gguf-py, llama.cpp's own
writer), so lorac's GGUF reader (core/src/gguf.c) is checked against an independent writer.

    pip install gguf numpy
    python3 tests/tools/make_gguf_fixture.py [out.gguf]

Made with gguf 0.19.0 and numpy 2.4. tests/test_gguf.c hard-codes the values below; change both
together. The file holds:
  * one scalar key of every value type (test.u8 ... test.f64, test.string, test.bool),
  * one array key of every element type (test.arr.<type>), including a string array,
  * general.alignment = 64 (a non-default alignment, applied by gguf-py to the data blob),
  * tensors:
      "matrix"    F32 numpy shape (3, 5) -> GGUF ne = [5, 3]; value r*10 + c except the markers
                  matrix[1, 3] = 42.0 and matrix[2, 0] = -7.5 ([row, col] in numpy order)
      "trailing"  F32 numpy shape (1, 1, 2, 4) -> ne = [4, 2, 1, 1] with n_dims = 4 (gguf-py keeps
                  trailing 1s); value = flat index
      "q8"        Q8_0 of numpy shape (2, 64) quantised by gguf.quants -> ne = [64, 2]; the
                  dequantised values (gguf.quants.dequantize) are stored in the key
                  test.q8_0.dequant (f32 array, 128 values) as the golden reference
      "half"      F16 numpy shape (2, 3) -> ne = [3, 2]; values [[1, -2, 0.5], [65504, 2**-24, -0.0]]
      "q3k"       Q3_K (a ggml type lorac does not support), one block of 110 bytes 0..109
                  -> ne = [256, 1]: listing works, loading it is an error
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/gguf_fixture.gguf"
    w = gguf.GGUFWriter(out, arch="lorac-test")
    w.add_custom_alignment(64)

    # scalars of every value type
    w.add_key_value("test.u8", 200, VT.UINT8)
    w.add_key_value("test.i8", -100, VT.INT8)
    w.add_key_value("test.u16", 60000, VT.UINT16)
    w.add_key_value("test.i16", -30000, VT.INT16)
    w.add_key_value("test.u32", 4000000000, VT.UINT32)
    w.add_key_value("test.i32", -2000000000, VT.INT32)
    w.add_key_value("test.f32", 3.25, VT.FLOAT32)
    w.add_key_value("test.bool", True, VT.BOOL)
    w.add_key_value("test.string", "h\u00e9llo w\u00f6rld", VT.STRING)
    w.add_key_value("test.u64", 2**63 + 5, VT.UINT64)
    w.add_key_value("test.i64", -(2**62) - 3, VT.INT64)
    w.add_key_value("test.f64", -1.0 / 3.0, VT.FLOAT64)

    # arrays of every element type
    w.add_key_value("test.arr.u8", [1, 2, 255], VT.ARRAY, VT.UINT8)
    w.add_key_value("test.arr.i8", [-128, 0, 127], VT.ARRAY, VT.INT8)
    w.add_key_value("test.arr.u16", [0, 65535], VT.ARRAY, VT.UINT16)
    w.add_key_value("test.arr.i16", [-32768, 32767, -1], VT.ARRAY, VT.INT16)
    w.add_key_value("test.arr.u32", [7, 4294967295], VT.ARRAY, VT.UINT32)
    w.add_key_value("test.arr.i32", [-5, 0, 5, 2147483647], VT.ARRAY, VT.INT32)
    w.add_key_value("test.arr.f32", [0.5, -1.25, 1e30], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("test.arr.bool", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_key_value("test.arr.string", ["alpha", "", "\u03b2eta", "with space"], VT.ARRAY, VT.STRING)
    w.add_key_value("test.arr.u64", [0, 2**64 - 1], VT.ARRAY, VT.UINT64)
    w.add_key_value("test.arr.i64", [-(2**63), 2**63 - 1], VT.ARRAY, VT.INT64)
    w.add_key_value("test.arr.f64", [1.5, -2.25e-300], VT.ARRAY, VT.FLOAT64)

    matrix = np.array([[r * 10 + c for c in range(5)] for r in range(3)], dtype=np.float32)
    matrix[1, 3] = 42.0
    matrix[2, 0] = -7.5
    w.add_tensor("matrix", matrix)

    w.add_tensor("trailing", np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4))

    rng = np.random.default_rng(1234)
    x = rng.uniform(-2.0, 3.0, size=(2, 64)).astype(np.float32)
    q = gguf.quants.quantize(x, QT.Q8_0)
    w.add_tensor("q8", q, raw_dtype=QT.Q8_0)
    deq = gguf.quants.dequantize(q, QT.Q8_0).astype(np.float32).reshape(-1)
    w.add_key_value("test.q8_0.dequant", [float(v) for v in deq], VT.ARRAY, VT.FLOAT32)

    half = np.array([[1.0, -2.0, 0.5], [65504.0, 2.0**-24, -0.0]], dtype=np.float16)
    w.add_tensor("half", half)

    w.add_tensor("q3k", np.arange(110, dtype=np.uint8).reshape(1, 110), raw_dtype=QT.Q3_K)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # read back with gguf-py's own reader as a sanity check of the file just written
    r = gguf.GGUFReader(out)
    t = {t.name: t for t in r.tensors}
    assert list(t["matrix"].shape) == [5, 3], t["matrix"].shape
    assert list(t["trailing"].shape) == [4, 2, 1, 1], t["trailing"].shape
    assert list(t["q8"].shape) == [64, 2], t["q8"].shape
    print(f"wrote {out}: {len(r.fields)} keys, {len(r.tensors)} tensors")


if __name__ == "__main__":
    main()
