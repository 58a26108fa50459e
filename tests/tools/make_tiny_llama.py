#!/usr/bin/env python3
"""Make tests/fixtures/tiny_llama.gguf, tests/fixtures/tiny_qwen2.gguf and
tests/fixtures/tiny_logits.txt: two tiny random decoder models and their reference logits.

Usage:
    python3 tests/tools/make_tiny_llama.py [--out-dir tests/fixtures] [--no-hf-check]

Needs: numpy, gguf (gguf-py 0.19); for the cross-check also torch + transformers (>= 4.46, with
GGUF support). Deterministic: numpy Generator PCG64 seeded with SEED_LLAMA / SEED_QWEN2, so a
rerun rewrites byte-identical files (gguf-py version permitting).

THE MODELS (both: n_vocab 64, n_embd 32, n_layer 2, n_head 4, n_head_kv 2, head_dim 8, n_ff 48,
context_length 128, swiglu FFN, pre-norm RMSNorm, causal attention, GQA with each KV head shared by
n_head/n_head_kv = 2 consecutive query heads: query head h uses KV head h // 2):

  tiny_llama.gguf  general.architecture "llama": NORM rope (pairs (2i, 2i+1)), rope.freq_base
                   10000, rms eps 1e-5, no biases, untied output (output.weight present).
                   Q/K rows are in GGUF (llama.cpp) order: the random weights are drawn directly
                   in that layout, i.e. this is what convert_hf_to_gguf's q/k permutation would
                   have produced (formats.md §5); a Hugging Face reader must un-permute them.
  tiny_qwen2.gguf  general.architecture "qwen2": NEOX rope (pairs (i, i + head_dim/2)),
                   rope.freq_base 1000000, rms eps 1e-6, attn_q/attn_k/attn_v biases (F32,
                   ne=[out]), no attn_output bias, tied output (no output.weight: the logits use
                   token_embd.weight).

Tensors (GGUF names, ne order = [in, out] for matrices, the bytes of a PyTorch [out, in] weight):
    token_embd.weight [32, 64]     output_norm.weight [32]     output.weight [32, 64] (llama only)
    blk.N.attn_norm.weight [32]    blk.N.ffn_norm.weight [32]
    blk.N.attn_q.weight [32, 32]   blk.N.attn_k.weight [32, 16]   blk.N.attn_v.weight [32, 16]
    blk.N.attn_output.weight [32, 32]
    blk.N.ffn_gate.weight [32, 48] blk.N.ffn_up.weight [32, 48]   blk.N.ffn_down.weight [48, 32]
    qwen2 only: blk.N.attn_q.bias [32], blk.N.attn_k.bias [16], blk.N.attn_v.bias [16]
All F32 except those listed in Q8_0_TENSORS (type 8, reference quantizer of gguf-py: d = amax/127,
q = round(x/d)); the reference logits use their dequantised values, so a correct Q8_0 reader
reproduces them exactly as for F32. Norm weights are 1 + 0.2*N(0,1) (not 1, so a missing
weight is seen).

Metadata (every key a loader needs; u32 unless noted):
    general.architecture (str), general.name (str), general.alignment 32 (default, not written),
    <arch>.context_length 128, <arch>.embedding_length 32, <arch>.block_count 2,
    <arch>.feed_forward_length 48, <arch>.attention.head_count 4, <arch>.attention.head_count_kv 2,
    <arch>.attention.key_length 8, <arch>.attention.value_length 8, <arch>.rope.dimension_count 8,
    <arch>.attention.layer_norm_rms_epsilon (f32), <arch>.rope.freq_base (f32),
    <arch>.vocab_size 64, general.file_type 0 (u32; mostly F32)
    tokenizer.ggml.model "llama" (SPM), tokenizer.ggml.tokens (str[64]), tokenizer.ggml.scores
    (f32[64]), tokenizer.ggml.token_type (i32[64]), tokenizer.ggml.bos_token_id 1, eos 2,
    unknown 0 (u32), tokenizer.ggml.add_bos_token true, add_eos_token false,
    add_space_prefix true (bool).
    Vocabulary: 0 "<unk>" (UNKNOWN 2), 1 "<s>" (CONTROL 3), 2 "</s>" (CONTROL 3), then 61 NORMAL (1)
    pieces: "▁", the 26 letters a..z, and 34 multi-character pieces ("▁the", "th", ...); score of
    id i is -(i - 3) for the normal pieces (higher merges first) and 0 for the specials.

THE REFERENCE LOGITS: tests/fixtures/tiny_logits.txt, computed by the plain numpy forward below in
float64 from the weights as stored in the files (Q8_0 dequantised), for the fixed sequence IDS
(positions 0..6). Text, one record a line, fields separated by one space, '#' starts a comment
line; floats are printed with "%.9g" (round-trip for float32):
    lorac-tiny-logits 1
    model <file name>                       starts a block; the file sits next to this fixture
    arch <llama|qwen2>
    rope <norm|neox>
    n_vocab 64
    n_tokens 7
    ids <7 ints>                            the input token ids, position p = index 0..6
    logits <p> <64 floats>                  one line per position p = 0..6, logits over the vocab
    end                                     ends the block
(two blocks: tiny_llama.gguf, then tiny_qwen2.gguf). Logits are those of the last layer's
RMSNorm(x)*output_norm times output (or token_embd when tied); no softcap, no scaling.

The forward (per layer, x: [T, 32] rows = tokens):
    h = rms_norm(x) * attn_norm,  rms_norm(x) = x / sqrt(mean(x^2) + eps)
    q = h Wq^T (+ bq), k = h Wk^T (+ bk), v = h Wv^T (+ bv)    split into heads of 8
    q, k = rope(q, k; pos = 0..T-1, theta_i = pos * base^(-2i/8), i = 0..3)
           NORM: (x[2i], x[2i+1]) rotated; NEOX: (x[i], x[i+4]) rotated;
           rotation: (a, b) -> (a cos - b sin, a sin + b cos)
    att = softmax(q k^T / sqrt(8) + causal mask) v            per head, KV head = h // 2
    x = x + att Wo^T
    h = rms_norm(x) * ffn_norm;  x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T,  silu(z) = z/(1+e^-z)
The cross-check loads both files with transformers (AutoModelForCausalLM.from_pretrained(dir,
gguf_file=...), float32), which un-permutes llama's q/k rows and uses rotate_half (NEOX) pairing,
and prints the max |logit difference| against the numpy logits; it must be < 1e-4.
"""

import argparse
import os
import sys

import numpy as np

SEED_LLAMA = 20240611
SEED_QWEN2 = 20240612
IDS = [1, 14, 63, 37, 5, 22, 50]

N_VOCAB, N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_CTX = 64, 32, 2, 4, 2, 8, 48, 128

Q8_0_TENSORS = {
    "llama": {"token_embd.weight", "blk.1.attn_v.weight", "blk.1.ffn_up.weight"},
    "qwen2": {"blk.0.attn_k.weight", "blk.1.ffn_gate.weight", "blk.1.attn_output.weight"},
}

SPECS = {
    "llama": dict(file="tiny_llama.gguf", seed=SEED_LLAMA, rope="norm", base=10000.0, eps=1e-5,
                  qkv_bias=False, tied=False),
    "qwen2": dict(file="tiny_qwen2.gguf", seed=SEED_QWEN2, rope="neox", base=1000000.0, eps=1e-6,
                  qkv_bias=True, tied=True),
}

PIECES = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te",
          "▁t", "▁a", "▁s", "▁w", "▁o", "▁i", "▁c", "▁b", "▁the", "▁and", "▁of", "▁to", "▁in",
          "▁is", "▁it", "▁that", "▁for", "▁on", "ing", "ed"]


def vocab():
    tokens = ["<unk>", "<s>", "</s>", "▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + PIECES
    assert len(tokens) == N_VOCAB and len(set(tokens)) == N_VOCAB, len(tokens)
    types = [2, 3, 3] + [1] * (N_VOCAB - 3)
    scores = [0.0, 0.0, 0.0] + [float(3 - i) for i in range(3, N_VOCAB)]
    return tokens, scores, types


# ---- weights ----------------------------------------------------------------------------------
def make_weights(spec):
    """Weights as numpy arrays in PyTorch orientation [out, in] (= GGUF ne [in, out]), float32."""
    rng = np.random.Generator(np.random.PCG64(spec["seed"]))
    E, F, Hd = N_EMBD, N_FF, HEAD_DIM

    def mat(out, inp, gain=1.0):
        return (rng.standard_normal((out, inp)) * gain / np.sqrt(inp)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"token_embd.weight": rng.standard_normal((N_VOCAB, E)).astype(np.float32)}
    for il in range(N_LAYER):
        p = f"blk.{il}."
        w[p + "attn_norm.weight"] = norm(E)
        w[p + "attn_q.weight"] = mat(N_HEAD * Hd, E, 2.0)      # gain 2: peaked attention
        w[p + "attn_k.weight"] = mat(N_HEAD_KV * Hd, E, 2.0)
        w[p + "attn_v.weight"] = mat(N_HEAD_KV * Hd, E)
        if spec["qkv_bias"]:
            w[p + "attn_q.bias"] = (0.5 * rng.standard_normal(N_HEAD * Hd)).astype(np.float32)
            w[p + "attn_k.bias"] = (0.5 * rng.standard_normal(N_HEAD_KV * Hd)).astype(np.float32)
            w[p + "attn_v.bias"] = (0.5 * rng.standard_normal(N_HEAD_KV * Hd)).astype(np.float32)
        w[p + "attn_output.weight"] = mat(E, N_HEAD * Hd)
        w[p + "ffn_norm.weight"] = norm(E)
        w[p + "ffn_gate.weight"] = mat(F, E)
        w[p + "ffn_up.weight"] = mat(F, E)
        w[p + "ffn_down.weight"] = mat(E, F)
    w["output_norm.weight"] = norm(E)
    if not spec["tied"]:
        w["output.weight"] = mat(N_VOCAB, E, 4.0)
    return w


def write_gguf(path, arch, spec, w):
    """Write the model; returns the weights as a reader sees them (Q8_0 ones dequantised)."""
    import gguf

    tokens, scores, types = vocab()
    wr = gguf.GGUFWriter(path, arch)
    wr.add_name(f"lorac tiny {arch} (random, seed {spec['seed']})")
    wr.add_file_type(0)
    wr.add_context_length(N_CTX)
    wr.add_embedding_length(N_EMBD)
    wr.add_block_count(N_LAYER)
    wr.add_feed_forward_length(N_FF)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_key_length(HEAD_DIM)
    wr.add_value_length(HEAD_DIM)
    wr.add_rope_dimension_count(HEAD_DIM)
    wr.add_layer_norm_rms_eps(spec["eps"])
    wr.add_rope_freq_base(spec["base"])
    wr.add_vocab_size(N_VOCAB)
    wr.add_tokenizer_model("llama")
    wr.add_token_list(tokens)
    wr.add_token_scores(scores)
    wr.add_token_types(types)
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_add_bos_token(True)
    wr.add_add_eos_token(False)
    wr.add_add_space_prefix(True)

    seen = {}
    for name, a in w.items():
        if name in Q8_0_TENSORS[arch]:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            wr.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            seen[name] = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0).reshape(a.shape)
        else:
            wr.add_tensor(name, a)
            seen[name] = a
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return seen


def read_gguf(path):
    """Independent read-back through gguf.GGUFReader: {name: float64 array [out, in]}."""
    import gguf

    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape))   # ne reversed = numpy shape
        out[t.name] = np.asarray(a, dtype=np.float64).reshape(shape)
    return out


# ---- the plain numpy forward (float64) -------------------------------------------------------
def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base, mode):
    """x: [T, H, d]; pos: [T]. NORM rotates (2i, 2i+1), NEOX rotates (i, i + d/2)."""
    d = x.shape[-1]
    i = np.arange(d // 2)
    theta = pos[:, None] * base ** (-2.0 * i / d)          # [T, d/2]
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    y = x.copy()
    if mode == "norm":
        a, b = x[..., 0::2], x[..., 1::2]
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
    elif mode == "neox":
        a, b = x[..., : d // 2], x[..., d // 2:]
        y[..., : d // 2], y[..., d // 2:] = a * c - b * s, a * s + b * c
    else:
        raise ValueError(mode)
    return y


def forward(w, spec, ids, rope_mode=None, gqa="consecutive"):
    rope_mode = rope_mode or spec["rope"]
    eps, T, Hd = spec["eps"], len(ids), HEAD_DIM
    pos = np.arange(T, dtype=np.float64)
    x = w["token_embd.weight"][ids].astype(np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    group = N_HEAD // N_HEAD_KV
    for il in range(N_LAYER):
        p = f"blk.{il}."
        h = rms_norm(x, w[p + "attn_norm.weight"], eps)
        q, k, v = (h @ w[p + f"attn_{n}.weight"].T + (w[p + f"attn_{n}.bias"] if spec["qkv_bias"] else 0.0)
                   for n in "qkv")
        q = rope(q.reshape(T, N_HEAD, Hd), pos, spec["base"], rope_mode)
        k = rope(k.reshape(T, N_HEAD_KV, Hd), pos, spec["base"], rope_mode)
        v = v.reshape(T, N_HEAD_KV, Hd)
        att = np.empty((T, N_HEAD, Hd))
        for hh in range(N_HEAD):
            kv = hh // group if gqa == "consecutive" else hh % N_HEAD_KV
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(Hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            att[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv, :]
        x = x + att.reshape(T, N_HEAD * Hd) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        g = h @ w[p + "ffn_gate.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
    x = rms_norm(x, w["output_norm.weight"], eps)
    out = w["token_embd.weight"] if spec["tied"] else w["output.weight"]
    return x @ out.T


# ---- cross-check with transformers -----------------------------------------------------------
def hf_logits(path, ids):
    import torch
    from transformers import AutoModelForCausalLM

    d, f = os.path.split(os.path.abspath(path))
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].double().numpy()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "fixtures"))
    ap.add_argument("--no-hf-check", action="store_true", help="skip the transformers cross-check")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out_dir)

    lines = ["lorac-tiny-logits 1",
             "# made by tests/tools/make_tiny_llama.py: plain numpy float64 forward over the weights",
             "# as stored in the GGUF files (Q8_0 tensors dequantised); format in that script's docstring"]
    ok = True
    for arch, spec in SPECS.items():
        path = os.path.join(out_dir, spec["file"])
        w_written = write_gguf(path, arch, spec, make_weights(spec))
        w = read_gguf(path)
        for n, a in w_written.items():      # the reader sees exactly what we meant to write
            assert a.shape == w[n].shape and np.array_equal(a.astype(np.float64), w[n]), n
        logits = forward(w, spec, IDS)
        wrong_rope = forward(w, spec, IDS, rope_mode="neox" if spec["rope"] == "norm" else "norm")
        wrong_gqa = forward(w, spec, IDS, gqa="interleaved")
        print(f"{spec['file']}: {os.path.getsize(path)} bytes; logits range [{logits.min():.3f}, "
              f"{logits.max():.3f}], argmax {logits.argmax(axis=1).tolist()}")
        print(f"  discrimination: max|diff| with the other rope pairing {np.abs(wrong_rope - logits).max():.4f}, "
              f"with KV head h % n_head_kv {np.abs(wrong_gqa - logits).max():.4f}")
        lines += [f"model {spec['file']}", f"arch {arch}", f"rope {spec['rope']}", f"n_vocab {N_VOCAB}",
                  f"n_tokens {len(IDS)}", "ids " + " ".join(str(i) for i in IDS)]
        lines += [f"logits {p} " + " ".join(f"{v:.9g}" for v in row) for p, row in enumerate(logits)]
        lines.append("end")
        if not args.no_hf_check:
            hf = hf_logits(path, IDS)
            diff = np.abs(hf - logits).max()
            print(f"  transformers (gguf_file) vs numpy: max|diff| = {diff:.3g}")
            ok = ok and diff < 1e-4
    with open(os.path.join(out_dir, "tiny_logits.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if not ok:
        sys.exit("transformers and the numpy forward disagree")


if __name__ == "__main__":
    main()
