#!/usr/bin/env python3
"""Golden vectors for lorac's dtype layer (tests/test_dtype.c), made with an INDEPENDENT
implementation: the `gguf` package's numpy (de)quantisers (gguf-py, `gguf.quants`).

    pip install gguf numpy
    python3 tests/tools/make_quant_fixture.py [-o tests/fixtures/quant_golden.bin]

Made with gguf 0.19.0 and numpy 2.4.6; the output is deterministic (fixed seed). CI does not
run this script: the fixture it writes is committed.

What it holds
-------------
* DEQUANT records for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, F16 and BF16: random raw
  blocks and the F32 values gguf.quants.dequantize gives for them. Quant bytes are random; every
  block's fp16 d (and dmin, m) is random but finite (one block per type has a subnormal d, one a
  negative d; Q4_1/Q5_1 also a subnormal and a negative m); every 4/5-bit block holds both its
  lowest and its highest level; in Q4_K and Q5_K
  blocks the 8 six-bit sub-block scales are all different and so are the 8 mins; in Q6_K blocks
  the 16 int8 scales are all different (one block holds both -128 and 127). Every tensor has
  several rows of several blocks. F16/BF16 rows have an odd length (37) and include the special
  bit patterns (+-0, subnormals, largest finite, +-Inf, NaNs).
* QUANTIZE records for the types gguf.quants.quantize supports among ours (Q8_0, Q4_0, Q4_1,
  Q5_0, Q5_1, F16, BF16): fixed F32 input (Gaussian rows at several magnitudes, plus edge blocks:
  all zeros, constant blocks, rounding ties, repeated maxima of both signs, large offsets, tiny
  values) and the bytes gguf makes of it. gguf's Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 quantisers
  reproduce ggml's quantize_row_*_ref bit for bit, so lorac's bytes must be identical. gguf 0.19
  has no Q4_K/Q5_K/Q6_K quantiser; test_dtype.c checks those by round-trip error instead.
* The records of the first version of this script (Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16) come first
  and are byte-for-byte unchanged; the Q4_1/Q5_0/Q5_1/Q5_K records are appended after them and
  drawn from the same random stream afterwards, so they do not disturb the older ones.

File layout (all integers little-endian u32, all floats little-endian IEEE binary32)
-------------------------------------------------------------------------------------
    header:  magic "LCQG" (4 bytes), version = 1, n_records
    record:  kind      0 = DEQUANT, 1 = QUANTIZE
             dtype     ggml/GGUF type id (F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8,
                       Q4_K 12, Q5_K 13, Q6_K 14, BF16 30)
             ne0       elements per row (a multiple of the type's block size)
             ne1       number of rows
             nbytes    raw byte count = ne1 * row_size(ne0)
             label     32 bytes, NUL-padded ASCII description
             DEQUANT:  raw[nbytes], then f32 values[ne1 * ne0] (gguf.quants.dequantize of raw)
             QUANTIZE: f32 input[ne1 * ne0], then raw[nbytes] (gguf.quants.quantize of input)
Rows are stored one after another (row r of raw starts at r * nbytes / ne1).
"""
import argparse
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

MAGIC = b"LCQG"
VERSION = 1
DEQUANT, QUANTIZE = 0, 1
LABEL_LEN = 32

rng = np.random.default_rng(20250601)


def random_finite_fp16(n, *, subnormal_at=None, negative_at=None):
    """n random fp16 bit patterns that are finite and nonzero; optional forced subnormal/negative."""
    out = np.empty(n, dtype=np.uint16)
    for i in range(n):
        while True:
            h = int(rng.integers(0, 1 << 16))
            if (h & 0x7C00) != 0x7C00 and (h & 0x7FFF) != 0:
                break
        if i == subnormal_at:
            h = (h & 0x8000) | int(rng.integers(1, 0x400))        # exponent 0: subnormal
        if i == negative_at:
            h |= 0x8000
        out[i] = h
    return out


def blocks_q8_0(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    raw = []
    for i in range(nblocks):
        qs = rng.integers(0, 256, size=32, dtype=np.uint8)
        qs[0], qs[1] = 0x80, 0x7F                                    # -128 and 127 present
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + qs.tobytes())
    return b"".join(raw)


def blocks_q4_0(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    raw = []
    for i in range(nblocks):
        qs = rng.integers(0, 256, size=16, dtype=np.uint8)
        qs[0] = 0xF0                                                 # nibbles 0 and 15 present
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + qs.tobytes())
    return b"".join(raw)


def q4_k_scales_distinct():
    """Random 12 scale bytes whose 8 six-bit scales are distinct and whose 8 mins are distinct
    (checked with gguf's own unpacking, Q4_K.get_scale_min)."""
    while True:
        s = rng.integers(0, 256, size=(1, 12), dtype=np.uint8)
        sc, mn = quants.Q4_K.get_scale_min(s.copy())
        if len(set(sc[0].tolist())) == 8 and len(set(mn[0].tolist())) == 8:
            return s[0].tobytes()


def blocks_q4_k(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    dmin = random_finite_fp16(nblocks, subnormal_at=2, negative_at=3)
    raw = []
    for i in range(nblocks):
        qs = rng.integers(0, 256, size=128, dtype=np.uint8)
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + dmin[i:i + 1].view(np.uint8).tobytes()
                   + q4_k_scales_distinct() + qs.tobytes())
    return b"".join(raw)


def blocks_q6_k(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    raw = []
    for i in range(nblocks):
        ql = rng.integers(0, 256, size=128, dtype=np.uint8)
        qh = rng.integers(0, 256, size=64, dtype=np.uint8)
        while True:                                                  # 16 distinct int8 scales
            sc = rng.choice(256, size=16, replace=False).astype(np.uint8)
            if i == 2:
                sc[3], sc[12] = 0x80, 0x7F                           # -128 and 127 present
            if len(set(sc.tolist())) == 16:
                break
        raw.append(ql.tobytes() + qh.tobytes() + sc.tobytes() + d[i:i + 1].view(np.uint8).tobytes())
    return b"".join(raw)


def blocks_q4_1(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    m = random_finite_fp16(nblocks, subnormal_at=2, negative_at=3)
    raw = []
    for i in range(nblocks):
        qs = rng.integers(0, 256, size=16, dtype=np.uint8)
        qs[0] = 0xF0                                                 # nibbles 0 and 15 present
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + m[i:i + 1].view(np.uint8).tobytes() + qs.tobytes())
    return b"".join(raw)


def q5_bits():
    """Random qh (4 bytes) and qs (16 bytes) of a Q5_0/Q5_1 block in which element 0 is level 0
    and element 16 is level 31 (bit 0 of qh clear, bit 16 set, qs[0] = 0xF0)."""
    qh = rng.integers(0, 256, size=4, dtype=np.uint8)
    qh[0] &= 0xFE
    qh[2] |= 0x01
    qs = rng.integers(0, 256, size=16, dtype=np.uint8)
    qs[0] = 0xF0
    return qh.tobytes(), qs.tobytes()


def blocks_q5_0(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    raw = []
    for i in range(nblocks):
        qh, qs = q5_bits()
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + qh + qs)
    return b"".join(raw)


def blocks_q5_1(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    m = random_finite_fp16(nblocks, subnormal_at=2, negative_at=3)
    raw = []
    for i in range(nblocks):
        qh, qs = q5_bits()
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + m[i:i + 1].view(np.uint8).tobytes() + qh + qs)
    return b"".join(raw)


def blocks_q5_k(nblocks):
    d = random_finite_fp16(nblocks, subnormal_at=0, negative_at=1)
    dmin = random_finite_fp16(nblocks, subnormal_at=2, negative_at=3)
    raw = []
    for i in range(nblocks):
        qh = rng.integers(0, 256, size=32, dtype=np.uint8)
        qs = rng.integers(0, 256, size=128, dtype=np.uint8)
        qh[0], qh[1], qs[0], qs[1] = 0x00, 0xFF, 0x00, 0xFF          # levels 0 and 31 in every sub-block
        raw.append(d[i:i + 1].view(np.uint8).tobytes() + dmin[i:i + 1].view(np.uint8).tobytes()
                   + q4_k_scales_distinct() + qh.tobytes() + qs.tobytes())
    return b"".join(raw)


HALF_SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF,
                 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00]
BF16_SPECIALS = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0xFF7F,
                 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC0]


def raw_half(specials, ne0, ne1):
    vals = rng.integers(0, 1 << 16, size=ne0 * ne1, dtype=np.uint64).astype(np.uint16)
    vals[:len(specials)] = specials
    return vals.tobytes()


def row_size(qtype, ne0):
    bs, ts = GGML_QUANT_SIZES[qtype]
    assert ne0 % bs == 0
    return ne0 // bs * ts


def dequant_record(qtype, ne0, ne1, raw, label):
    nbytes = row_size(qtype, ne0) * ne1
    assert len(raw) == nbytes, (qtype, len(raw), nbytes)
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(ne1, nbytes // ne1)
    vals = quants.dequantize(arr, qtype).astype(np.float32, copy=False)
    assert vals.shape == (ne1, ne0), vals.shape
    return (DEQUANT, int(qtype), ne0, ne1, raw, np.ascontiguousarray(vals, dtype="<f4"), label)


def quantize_record(qtype, x, label):
    x = np.ascontiguousarray(x, dtype=np.float32)
    ne1, ne0 = x.shape
    with np.errstate(all="ignore"):           # NaN/Inf inputs of the F16/BF16 records
        q = quants.quantize(x, qtype)
    raw = np.ascontiguousarray(q).view(np.uint8).tobytes()
    assert len(raw) == row_size(qtype, ne0) * ne1
    return (QUANTIZE, int(qtype), ne0, ne1, raw, x.astype("<f4"), label)


def gaussian_rows(ne1, ne0, scales):
    x = rng.standard_normal((ne1, ne0)).astype(np.float32)
    return x * np.asarray(scales, dtype=np.float32).reshape(-1, 1)


def q8_0_input():
    x = gaussian_rows(4, 96, [1.0, 0.02, 300.0, 1e-3])
    e = np.zeros((1, 96), dtype=np.float32)
    # block 0 stays all zeros; block 1: amax 127 so 1/d = 1 and k + 0.5 are exact ties
    e[0, 32:64] = np.arange(-15.5, 16.5, 1.0, dtype=np.float32)
    e[0, 32] = 127.0
    # block 2: tiny values (d becomes an fp16 subnormal), mixed sign
    e[0, 64:96] = rng.uniform(-3e-6, 3e-6, 32).astype(np.float32)
    return np.vstack([x, e])


def q4_0_input():
    x = gaussian_rows(4, 64, [1.0, 0.05, 40.0, 1e-4])
    e = np.zeros((2, 64), dtype=np.float32)
    # row 4 block 0: all zeros; block 1: equal maxima of both signs (the first one wins)
    e[0, 32:64] = rng.uniform(-2.0, 2.0, 32).astype(np.float32)
    e[0, 40], e[0, 50] = 3.0, -3.0
    # row 5 block 0: max -8 so d = 1 and the grid is the integers; block 1: all positive
    e[1, 0:32] = np.linspace(-8.0, 7.5, 32, dtype=np.float32)
    e[1, 32:64] = rng.uniform(0.5, 1.5, 32).astype(np.float32)
    return np.vstack([x, e])


def q5_0_input():
    x = gaussian_rows(4, 64, [1.0, 0.05, 40.0, 1e-4])
    e = np.zeros((3, 64), dtype=np.float32)
    # row 4 block 0: all zeros; block 1: equal maxima of both signs (the first one wins)
    e[0, 32:64] = rng.uniform(-2.0, 2.0, 32).astype(np.float32)
    e[0, 40], e[0, 50] = 3.0, -3.0
    # row 5 block 0: max -16 so d = 1 and the grid is the integers (with +0.5 ties); block 1:
    # max +16 (d = -1, the clamped end at +16 is hit by -16)
    e[1, 0:32] = np.linspace(-16.0, 15.5, 32, dtype=np.float32)
    e[1, 32:64] = np.linspace(16.0, -15.5, 32, dtype=np.float32)
    e[1, 63] = -16.0
    # row 6 block 0: all positive; block 1: tiny values (d is an fp16 subnormal)
    e[2, 0:32] = rng.uniform(0.5, 1.5, 32).astype(np.float32)
    e[2, 32:64] = rng.uniform(-3e-6, 3e-6, 32).astype(np.float32)
    return np.vstack([x, e])


def minmax_input(nmax):
    """Input for Q4_1 (nmax 15) / Q5_1 (nmax 31)."""
    x = gaussian_rows(4, 64, [1.0, 0.05, 40.0, 1e-4])
    e = np.zeros((3, 64), dtype=np.float32)
    # row 4 block 0: all zeros; block 1: a constant block (max == min, d = 0)
    e[0, 32:64] = -1.375
    # row 5 block 0: integers 3..3+nmax so m = 3 and d = 1, some moved by +0.5 onto rounding ties;
    # block 1: a large offset (m rounds in fp16, d stays small)
    e[1, 0:32] = 3.0 + (np.arange(32) % (nmax + 1)).astype(np.float32)
    e[1, 1:31:3] += 0.5
    e[1, 32:64] = 1000.0 + rng.uniform(-0.25, 0.25, 32).astype(np.float32)
    # row 6 block 0: all negative; block 1: tiny values (d and m are fp16 subnormals)
    e[2, 0:32] = rng.uniform(-1.5, -0.5, 32).astype(np.float32)
    e[2, 32:64] = rng.uniform(-3e-6, 3e-6, 32).astype(np.float32)
    return np.vstack([x, e])


def half_input(kind):
    """F32 values that exercise rounding: random magnitudes over the whole range, ties, subnormals,
    overflow, NaN, Inf. `kind` is 'f16' or 'bf16'."""
    ne0, ne1 = 37, 6
    sign = np.where(rng.random(ne0 * ne1) < 0.5, -1.0, 1.0)
    lo, hi = (-30, 18) if kind == "f16" else (-140, 128)
    mag = np.exp2(rng.uniform(lo, hi, ne0 * ne1))
    x = (sign * mag).astype(np.float32)
    if kind == "f16":
        special = [0.0, -0.0, 1.0, 65504.0, 65519.996, 65520.0, 1e6, 2.0 ** -24, 2.0 ** -25,
                   3 * 2.0 ** -25, 2.0 ** -26, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
                   2.0 ** -14 - 2.0 ** -25, -(2.0 ** -14), np.inf, -np.inf, np.nan]
    else:
        special = [0.0, -0.0, 1.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -23,
                   3.4028235e38, -3.4028235e38, 1e-40, -1e-45, np.inf, -np.inf, np.nan]
    x[:len(special)] = np.array(special, dtype=np.float32)
    if kind == "bf16":  # a signalling NaN pattern must stay NaN, not round to Inf
        x[len(special)] = np.array([0x7F800001], dtype=np.uint32).view(np.float32)[0]
    return x.reshape(ne1, ne0)


def build_records():
    recs = [
        dequant_record(T.Q8_0, 96, 4, blocks_q8_0(12), "q8_0 random blocks"),
        dequant_record(T.Q4_0, 64, 5, blocks_q4_0(10), "q4_0 random blocks"),
        dequant_record(T.Q4_K, 512, 3, blocks_q4_k(6), "q4_K distinct scales/mins"),
        dequant_record(T.Q6_K, 512, 3, blocks_q6_k(6), "q6_K distinct scales"),
        dequant_record(T.F16, 37, 5, raw_half(HALF_SPECIALS, 37, 5), "f16 random bits"),
        dequant_record(T.BF16, 37, 5, raw_half(BF16_SPECIALS, 37, 5), "bf16 random bits"),
    ]
    for qtype, x, label in [(T.Q8_0, q8_0_input(), "q8_0 ref quantizer"),
                            (T.Q4_0, q4_0_input(), "q4_0 ref quantizer"),
                            (T.F16, half_input("f16"), "f16 rounding"),
                            (T.BF16, half_input("bf16"), "bf16 rounding"),
                            (T.Q4_K, gaussian_rows(1, 256, [1.0]), "q4_K ref quantizer"),
                            (T.Q6_K, gaussian_rows(1, 256, [1.0]), "q6_K ref quantizer")]:
        try:
            recs.append(quantize_record(qtype, x, label))
        except NotImplementedError:
            print(f"note: gguf {qtype.name} has no quantize(); not in the fixture", file=sys.stderr)
    # --- appended in version 2 of this script (after every draw of the records above) ---
    recs += [
        dequant_record(T.Q4_1, 64, 5, blocks_q4_1(10), "q4_1 random blocks"),
        dequant_record(T.Q5_0, 64, 5, blocks_q5_0(10), "q5_0 random blocks"),
        dequant_record(T.Q5_1, 64, 5, blocks_q5_1(10), "q5_1 random blocks"),
        dequant_record(T.Q5_K, 512, 3, blocks_q5_k(6), "q5_K distinct scales/mins"),
    ]
    for qtype, x, label in [(T.Q4_1, minmax_input(15), "q4_1 ref quantizer"),
                            (T.Q5_0, q5_0_input(), "q5_0 ref quantizer"),
                            (T.Q5_1, minmax_input(31), "q5_1 ref quantizer"),
                            (T.Q5_K, gaussian_rows(1, 256, [1.0]), "q5_K ref quantizer")]:
        try:
            recs.append(quantize_record(qtype, x, label))
        except NotImplementedError:
            print(f"note: gguf {qtype.name} has no quantize(); not in the fixture", file=sys.stderr)
    return recs


def write(path, recs):
    out = bytearray(MAGIC + struct.pack("<II", VERSION, len(recs)))
    for kind, qtype, ne0, ne1, raw, vals, label in recs:
        lab = label.encode("ascii")
        assert len(lab) < LABEL_LEN
        out += struct.pack("<5I", kind, qtype, ne0, ne1, len(raw)) + lab.ljust(LABEL_LEN, b"\0")
        if kind == DEQUANT:
            out += raw + vals.tobytes()
        else:
            out += vals.tobytes() + raw
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default=os.path.join(here, "..", "fixtures", "quant_golden.bin"))
    args = ap.parse_args()
    recs = build_records()
    size = write(args.output, recs)
    for kind, qtype, ne0, ne1, raw, _, label in recs:
        print(f"{'DEQUANT ' if kind == DEQUANT else 'QUANTIZE'} {T(qtype).name:5s} ne=[{ne0},{ne1}] "
              f"{len(raw):6d} bytes  {label}")
    print(f"wrote {os.path.normpath(args.output)}: {len(recs)} records, {size} bytes")
    assert size < 300 * 1024


if __name__ == "__main__":
    main()
