#!/usr/bin/env python3
"""Make the Gemma 3 270M reference fixtures from the real model file:
    tests/fixtures/gemma3_ref_logits.txt     top-64 logits + log-sum-exp per position, 5 prompts
    tests/fixtures/gemma3_ref_generate.txt   greedy continuation of "The capital of France is"
    tests/fixtures/gemma3_ref_eval.txt       mean NLL / perplexity on the GPL-3 text (1024 tokens)

Usage:
    python3 tests/tools/make_reference_logits.py [--model PATH.gguf] [--out-dir tests/fixtures]
        [--gpl /usr/share/common-licenses/GPL-3] [--threads 2] [--no-numpy-check]
--model defaults to $LORAC_TEST_MODEL, else to what scripts/get-model.sh prints (it downloads and
assembles gemma-3-270m-q4_k_m.gguf on first use). Needs: numpy, gguf, torch, transformers
(>= 4.50, GGUF + Gemma 3 support; made with transformers 5.24, torch 2.15, gguf 0.19),
sentencepiece + protobuf for the optional tokenizer cross-check. Takes about 3 minutes on 2 cores
and 7.5 GB of memory (about 3 GB less with --no-numpy-check).

REFERENCE A (what the fixtures hold): Hugging Face transformers, float32 on the CPU, eager
attention, loading THE SAME GGUF: AutoModelForCausalLM.from_pretrained(dir, gguf_file=name). That
route dequantises every tensor with gguf-py (Q5_0/Q4_K/Q6_K/Q8_0 -> F32), maps the GGUF names to
the HF Gemma3 names, subtracts 1 from every *norm.weight (GGUF stores 1+w, HF Gemma3RMSNorm
computes x_hat*(1+w)), and builds a Gemma3TextConfig from the GGUF metadata. The script checks that
config against the metadata before use (sizes, eps, sliding_window 512, layer il global iff
il % 6 == 5, rope base 1e6 global / 1e4 local, query_pre_attn_scalar == head_dim, gelu_tanh, no
softcaps, tied output) and stops if any differs.
Tokens: the GGUF tokenizer through transformers (AutoTokenizer.from_pretrained(dir,
gguf_file=...)) with special-token parsing OFF (plain text: a "<bos>" in the text would stay
text) and add_bos: ids = [2] + encode(text). When sentencepiece is available the ids are
cross-checked against a sentencepiece model built from the same vocabulary (see
make_tokenizer_fixture.py); the texts have no space run longer than 31, where transformers'
Gemma GGUF tokenizer is known to differ.

REFERENCE B (a check, not written): a plain numpy float64 forward written from
reference/formats.md §3 over gguf-py-dequantised weights, GGUF norm weights used as stored
(x_hat * w). Its max |logit - A| is printed and noted in the fixtures; the script stops when it
exceeds 2e-2, or when A's and B's greedy tokens differ. B is also run with the sliding window
removed and with the global rope base on every layer, to show that the long prompt's fixture
catches both faults (printed and noted as comments).

COMMON FORMAT: text, one record a line, fields separated by one space; lines starting with '#'
are comments (skip them); strings are lowercase hex of their UTF-8 bytes (no spaces inside a
field); floats are printed with "%.9g" (logits are float32 values; lse, nll are float64). Token ids
are Gemma 3 vocabulary ids (bos 2, eos 1, n_vocab 262144). The first line names the format and
its version. Header records (in this order after the first line):
    model <file name>               gemma-3-270m-q4_k_m.gguf
    model_sha256 <hex>              a5fd3b62...6818 (scripts/get-model.sh checks the same)
    n_vocab 262144
    bos 2

gemma3_ref_logits.txt ("lorac-gemma3-ref-logits 1"):
    topk 64
    prompts 5
  then per prompt:
    prompt <name> <n_tokens> <n_pos> <hex text>   n_tokens counts the BOS
    ids <n_tokens> <id_0 = 2> <id_1> ...          the model input, positions 0..n_tokens-1
    pos <p> <id_p> <lse_p> <k_1> <z_1> ... <k_64> <z_64>     n_pos lines, p increasing
    end
  z_j is the logit of vocabulary id k_j at position p (the prediction of the token at p+1, made
  after seeing ids 0..p); the 64 largest logits in decreasing order, ties to the smaller id.
  lse_p = log(sum over all 262144 ids of exp(logit)), so log p(k | 0..p) = z - lse_p.
  Stored positions: every position of the four short prompts; for "long" (721 tokens, longer than
  the 512 sliding window of the local layers) p % 16 == 0, p in 508..516, and the last 4.
  Prompts (names): france, sentence, code, numbers, long.

gemma3_ref_generate.txt ("lorac-gemma3-ref-generate 1"):
    prompt <name> <hex text>
    prompt_ids <n> <ids...>             BOS included
    n_new 8
    new_ids 8 <ids...>                  greedy: argmax of the last position's logits (ties to
                                        the smaller id), appended, repeated; no sampling, no EOS stop
    margin 8 <floats>                   top-1 minus top-2 logit at each step (how safe a tie is)
    new_text <hex>                      transformers' decode of new_ids (U+2581 -> space)
    end

gemma3_ref_eval.txt ("lorac-gemma3-ref-eval 1"), the protocol `lorac eval` reproduces:
    source GPL-3 <sha256 of the file> <n_bytes>    /usr/share/common-licenses/GPL-3 (Debian 12)
    protocol bos_chunks
    chunk 255                  text tokens per window
    window 256                 = BOS + chunk
    n_windows 4
    text_ids 1020 <ids...>     the first 1020 ids of the WHOLE file (read as UTF-8, unchanged,
                               trailing newline included) tokenized without BOS, parse_special off
    win <w> <n_pred> <nll_sum> <mean_nll>        4 lines, w = 0..3, n_pred = 255
    nll <w> 255 <floats>                          4 lines after them: NLL per predicted token
    n_pred 1020
    nll_sum <float>
    mean_nll <float>           = nll_sum / n_pred, nats per predicted token
    perplexity <float>         = exp(mean_nll)
    end
  Protocol: window w = [2] + text_ids[255w : 255w+255] (256 tokens, positions 0..255, no state
  carried between windows). Predictions: for t = 0..254 the logits at position t score the token
  at t+1 (the first prediction is text token 0 given only BOS; BOS itself is never a target), so
  each window scores 255 tokens and all 1020 text tokens are scored exactly once.
  nll = lse_t - logit_t[target]. In lc_trainer_eval terms: ids = the window, labels[t] =
  window[t+1] for t < 255 and ignore_index for t = 255, pos = 0..255; the mean over counted
  tokens of each window, averaged over the 4 windows (equal counts), is mean_nll.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time

TOPK = 64
N_NEW = 8
EVAL_CHUNK, EVAL_WINDOWS = 255, 4
MAX_NUMPY_DIFF = 2e-2

LONG_TEXT_WRAPPED = """
The lighthouse keeper's logbook for the winter of that year survives in a small museum on the
harbour road, and it is a more interesting document than its plain cover suggests. Each entry
begins with the time, the wind direction and a short note on the state of the sea, written in
the same careful hand for almost four months. Then, somewhere in the middle of January, the
notes begin to change.

At first the changes are small. The keeper starts to record the colour of the sky at dawn, which
no regulation required of him. He notes the number of gulls on the rocks below the tower, and
later the names he has given to several of them. He writes that the lamp's clockwork needed
winding eleven times during one long night of fog, and that he sang to himself to stay awake,
although he does not say which songs.

By February the entries have grown to half a page. The supply boat has failed to arrive for
three weeks because of the storms, and the keeper is rationing oil, flour and tea. He
calculates, in a column of neat figures, how many nights the lamp can burn if he trims the wick
a little shorter, and he concludes that he can last until the second week of March. He is wrong
by only two days, which says something about both his arithmetic and his luck.

Historians who have studied the logbook disagree about what it shows. Some read it as the record
of a man slowly growing lonely, reaching for anything that might keep him company: birds,
weather, the sound of his own voice. Others see a practical person doing exactly what the job
demanded, noticing everything because noticing things was how ships were kept off the rocks.
Both readings can be defended, and perhaps both are true at once.

What is certain is that the light never failed. On the worst night of the season, when the wind
tore a shutter from the gallery and the rain came through the window frames, the keeper climbed
the stairs every hour to clean the salt from the glass. A fishing boat that had lost its way
reached the harbour safely before morning, and its crew later said that they had steered by the
beam for more than twenty miles.

The supply boat finally arrived on a calm, bright morning in March. The keeper's last entry of
the winter is the shortest in the whole book. It gives the time, the wind, the state of the sea,
and then a single extra line: the boat is here, and they have brought oranges.

In the spring the keeper was offered a post on the mainland, at a larger station with a cottage,
a garden and a road to the nearest town. He turned it down. In a letter to his sister, which the
museum also keeps, he explained that he had grown used to the rock, to the noise of the sea
under the floor and to the company of the gulls, and that he did not think he could sleep
anywhere quiet.

Today the tower is automatic, and nobody lives at the top of the rock. The lamp is powered by
solar panels and checked twice a year by engineers who arrive by helicopter and leave the same
afternoon. Visitors to the museum often stand for a long time in front of the open logbook,
reading the careful handwriting, and many of them say afterwards that they had not expected to
be moved by a list of winds and tides. The curator has started to keep a small notebook of her
own beside the display case, in which visitors may write whatever they like. Most of them write
about the oranges.
"""
# paragraphs joined by one blank line, the line breaks inside a paragraph are spaces
LONG_TEXT = "\n\n".join(" ".join(p.split("\n")) for p in LONG_TEXT_WRAPPED.strip().split("\n\n"))

CODE_TEXT = '''def fibonacci(n):
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


print([fibonacci(i) for i in range(10)])
'''

PROMPTS = [
    ("france", "The capital of France is"),
    ("sentence", "Although the weather forecast had promised a dry afternoon, the hikers packed rain "
                 "jackets, extra water and a paper map before setting out along the ridge trail."),
    ("code", CODE_TEXT),
    ("numbers", "On 2023-07-14 at 09:45, invoice #4521 came to $1,234.56 (incl. 19% VAT); "
                "pay by 31/08 - or call +1-555-0100, ext. 7!"),
    ("long", LONG_TEXT),
]
GENERATE_PROMPT = "france"


def stored_positions(name, n):
    if name != "long":
        return list(range(n))
    keep = {p for p in range(n) if p % 16 == 0} | set(range(508, 517)) | set(range(n - 4, n))
    return sorted(p for p in keep if p < n)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def hexs(s):
    return s.encode("utf-8").hex()


def fmt(v):
    return f"{float(v):.9g}"


# ---- reference A: transformers ---------------------------------------------------------------
def cfg_get(cfg, *names, default=None):
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def check_config(cfg, meta):
    """Stop when transformers' Gemma3TextConfig differs from the GGUF metadata (formats.md §3)."""
    rp = getattr(cfg, "rope_parameters", None) or {}
    if "full_attention" in rp:              # transformers >= 5: per layer-type rope parameters
        base_global = rp["full_attention"]["rope_theta"]
        base_local = rp["sliding_attention"]["rope_theta"]
        scaling = rp["full_attention"].get("rope_type", "default")
    else:
        base_global, base_local = cfg.rope_theta, cfg.rope_local_base_freq
        scaling = (getattr(cfg, "rope_scaling", None) or {}).get("rope_type", "default")
    n_layer = meta["block_count"]
    layer_types = getattr(cfg, "layer_types", None) or [
        "full_attention" if (il + 1) % cfg.sliding_window_pattern == 0 else "sliding_attention"
        for il in range(n_layer)]
    want = {
        "hidden_size": (cfg.hidden_size, meta["embedding_length"]),
        "num_hidden_layers": (cfg.num_hidden_layers, n_layer),
        "intermediate_size": (cfg.intermediate_size, meta["feed_forward_length"]),
        "num_attention_heads": (cfg.num_attention_heads, meta["attention.head_count"]),
        "num_key_value_heads": (cfg.num_key_value_heads, meta["attention.head_count_kv"]),
        "head_dim": (cfg.head_dim, meta["attention.key_length"]),
        "vocab_size": (cfg.vocab_size, meta["n_vocab"]),
        "rms_norm_eps": (cfg.rms_norm_eps, meta["attention.layer_norm_rms_epsilon"]),
        "sliding_window": (cfg.sliding_window, meta["attention.sliding_window"]),
        "rope global base": (base_global, meta["rope.freq_base"]),
        "rope local base": (base_local, 10000.0),
        "rope scaling": (scaling, "default"),
        "query_pre_attn_scalar": (cfg.query_pre_attn_scalar, meta["attention.key_length"]),
        "hidden_activation": (cfg.hidden_activation, "gelu_pytorch_tanh"),
        "final_logit_softcapping": (cfg.final_logit_softcapping, None),
        "attn_logit_softcapping": (cfg.attn_logit_softcapping, None),
        "tie_word_embeddings": (cfg.tie_word_embeddings, True),
        "layer_types": (list(layer_types), ["full_attention" if il % 6 == 5 else "sliding_attention"
                                            for il in range(n_layer)]),
    }
    bad = [f"{k}: transformers {a!r}, GGUF/llama.cpp {b!r}" for k, (a, b) in want.items() if a != b]
    if bad:
        sys.exit("transformers' Gemma 3 config is not faithful to the GGUF:\n  " + "\n  ".join(bad))


class HFModel:
    def __init__(self, path, threads):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        d, f = os.path.split(os.path.abspath(path))
        self.tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        self.model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                          attn_implementation="eager")
        self.model.eval()
        self.bt = self.tok.backend_tokenizer
        self.bt.encode_special_tokens = True      # plain text: special-token parsing off

    def encode(self, text, bos):
        ids = self.bt.encode(text, add_special_tokens=False).ids
        return ([bos] if bos is not None else []) + ids

    def logits(self, ids):
        """float32 numpy [len(ids), n_vocab]."""
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([ids]), use_cache=False)
        return out.logits[0].float().numpy()


# ---- reference B: numpy float64 forward (formats.md §3) ---------------------------------------
class NumpyGemma3:
    def __init__(self, path, meta):
        import numpy as np
        from gguf import GGUFReader, dequantize

        self.np, self.m = np, meta
        r = GGUFReader(path)
        self.w = {}
        for t in r.tensors:
            shape = tuple(int(x) for x in reversed(t.shape))
            self.w[t.name] = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(shape)

    def rms(self, x, w):
        np = self.np
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.m["attention.layer_norm_rms_epsilon"]) * w

    def rope_neox(self, x, base):
        np = self.np
        T, d = x.shape[0], x.shape[-1]
        theta = np.arange(T, dtype=np.float64)[:, None] * base ** (-2.0 * np.arange(d // 2) / d)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    def logits(self, ids, positions, window=True, local_base=10000.0):
        """float64 [len(positions), n_vocab]; window=False drops the sliding window,
        local_base sets the rope base of the local layers (fault variants)."""
        np, m, w = self.np, self.m, self.w
        T, E = len(ids), m["embedding_length"]
        H, Hkv, D = m["attention.head_count"], m["attention.head_count_kv"], m["attention.key_length"]
        n_swa = m["attention.sliding_window"]
        x = w["token_embd.weight"][ids] * np.sqrt(E)
        p1, p0 = np.arange(T)[:, None], np.arange(T)[None, :]
        causal = np.where(p0 > p1, -np.inf, 0.0)
        local_mask = np.where((p0 > p1) | (p1 - p0 >= n_swa), -np.inf, 0.0) if window else causal
        for il in range(m["block_count"]):
            pre = f"blk.{il}."
            is_local = il % 6 < 5
            h = self.rms(x, w[pre + "attn_norm.weight"])
            q = self.rms((h @ w[pre + "attn_q.weight"].T).reshape(T, H, D), w[pre + "attn_q_norm.weight"])
            k = self.rms((h @ w[pre + "attn_k.weight"].T).reshape(T, Hkv, D), w[pre + "attn_k_norm.weight"])
            v = (h @ w[pre + "attn_v.weight"].T).reshape(T, Hkv, D)
            base = local_base if is_local else m["rope.freq_base"]
            q, k = self.rope_neox(q, base), self.rope_neox(k, base)
            mask = local_mask if is_local else causal
            att = np.empty((T, H, D))
            for hh in range(H):
                kv = hh // (H // Hkv)
                s = (q[:, hh] @ k[:, kv].T) / np.sqrt(D) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                att[:, hh] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv]
            o = att.reshape(T, H * D) @ w[pre + "attn_output.weight"].T
            x = x + self.rms(o, w[pre + "post_attention_norm.weight"])
            g = self.rms(x, w[pre + "ffn_norm.weight"])
            a = g @ w[pre + "ffn_gate.weight"].T
            a = 0.5 * a * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (a + 0.044715 * a ** 3)))
            f = (a * (g @ w[pre + "ffn_up.weight"].T)) @ w[pre + "ffn_down.weight"].T
            x = x + self.rms(f, w[pre + "post_ffw_norm.weight"])
        x = self.rms(x[positions], w["output_norm.weight"])
        out = w.get("output.weight", w["token_embd.weight"])
        return x @ out.T


# ---- helpers ------------------------------------------------------------------------------------
def read_meta(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    if arch != "gemma3":
        sys.exit(f"{path}: general.architecture is {arch!r}, not 'gemma3'")
    meta = {k[len(arch) + 1:]: f.contents() for k, f in r.fields.items() if k.startswith(arch + ".")}
    meta["n_vocab"] = len(r.fields["tokenizer.ggml.tokens"].data)
    meta["bos"] = r.fields["tokenizer.ggml.bos_token_id"].contents()
    return meta


def top_k(np, row, k):
    cand = np.argpartition(-row, k + 16)[: k + 16]
    order = np.lexsort((cand, -row[cand]))        # by logit descending, then id ascending
    return cand[order][:k]


def lse(np, row):
    r = row.astype(np.float64)
    mx = r.max()
    return mx + np.log(np.exp(r - mx).sum())


def sp_crosscheck(model_path, texts, hf):
    """Compare the transformers ids with sentencepiece's; prints and returns a note."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        import make_tokenizer_fixture as mtf

        tokens, scores, types, meta = mtf.read_gguf_vocab(model_path)
        sp = mtf.load_sp(tokens, scores, types, meta)
    except Exception as e:  # noqa: BLE001 -- optional check
        print(f"tokenizer cross-check skipped: {e}")
        return "tokenizer ids not cross-checked (sentencepiece unavailable)"
    finally:
        sys.path.pop(0)
    for name, text in texts:
        a, b = hf.encode(text, None), sp.encode(text)
        if a != b:
            sys.exit(f"tokenizer disagreement on {name}: transformers {a[:20]}... sentencepiece {b[:20]}...")
    print(f"tokenizer: transformers == sentencepiece on {len(texts)} texts")
    return "token ids agreed by transformers (GGUF tokenizer) and sentencepiece"


def header(kind, model_path, model_sha, meta, notes):
    lines = [f"lorac-gemma3-ref-{kind} 1",
             "# made by tests/tools/make_reference_logits.py (format in its docstring and tests/tools/README.md)"]
    lines += ["# " + n for n in notes]
    lines += [f"model {os.path.basename(model_path)}", f"model_sha256 {model_sha}",
              f"n_vocab {meta['n_vocab']}", f"bos {meta['bos']}"]
    return lines


def default_model():
    env = os.environ.get("LORAC_TEST_MODEL")
    if env:
        return env
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "get-model.sh")
    return subprocess.run([script], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="gemma-3-270m-q4_k_m.gguf (default: $LORAC_TEST_MODEL or scripts/get-model.sh)")
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "fixtures"))
    ap.add_argument("--gpl", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-numpy-check", action="store_true", help="skip reference B (saves ~3 GB and a minute)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch
    import transformers
    from importlib.metadata import version

    model_path = os.path.abspath(args.model or default_model())
    out_dir = os.path.abspath(args.out_dir)
    t0 = time.time()
    model_sha = sha256_file(model_path)
    meta = read_meta(model_path)
    hf = HFModel(model_path, args.threads)
    check_config(hf.model.config, meta)
    bos = meta["bos"]
    print(f"loaded {model_path} in {time.time() - t0:.1f}s; transformers config matches the GGUF")
    gpl_bytes = open(args.gpl, "rb").read()
    gpl_text = gpl_bytes.decode("utf-8")
    tok_note = sp_crosscheck(model_path, PROMPTS + [("GPL-3", gpl_text)], hf)
    npm = None if args.no_numpy_check else NumpyGemma3(model_path, meta)
    notes = [f"reference: transformers {transformers.__version__} (torch {torch.__version__}, gguf {version('gguf')}) "
             "AutoModelForCausalLM.from_pretrained(gguf_file), float32, CPU, eager attention", tok_note]

    # ---- logits -------------------------------------------------------------------------------
    body, diffs, extra_notes = [], [], []
    for name, text in PROMPTS:
        ids = hf.encode(text, bos)
        pos = stored_positions(name, len(ids))
        z = hf.logits(ids)
        body += [f"prompt {name} {len(ids)} {len(pos)} {hexs(text)}", f"ids {len(ids)} " + " ".join(map(str, ids))]
        for p in pos:
            row = z[p]
            k = top_k(np, row, TOPK)
            body.append(f"pos {p} {ids[p]} {fmt(lse(np, row))} " + " ".join(f"{i} {fmt(row[i])}" for i in k))
        body.append("end")
        msg = f"{name}: {len(ids)} tokens, {len(pos)} stored, top-1 after the last token {int(z[-1].argmax())}"
        if npm is not None:
            zb = npm.logits(ids, pos)
            d = float(np.abs(zb - z[pos]).max())
            diffs.append(d)
            msg += f"; max|A - B| {d:.3g}"
            if d > MAX_NUMPY_DIFF:
                sys.exit(f"{name}: transformers and the numpy forward differ by {d}")
            if name == "long":
                late = [i for i, p in enumerate(pos) if p >= 512]
                d_win = float(np.abs(npm.logits(ids, pos, window=False)[late] - zb[late]).max())
                d_rope = float(np.abs(npm.logits(ids, pos, local_base=meta["rope.freq_base"]) - zb).max())
                extra_notes.append(f"long: without the 512 sliding window the logits at stored positions >= 512 move "
                                   f"by up to {d_win:.3g}; with rope base 1e6 on local layers by up to {d_rope:.3g}")
                print("  " + extra_notes[-1])
        print(msg, f"({time.time() - t0:.0f}s)")
    if diffs:
        extra_notes.insert(0, f"max |transformers f32 - numpy f64 forward| over all stored positions, full vocab: "
                              f"{max(diffs):.3g}")
    out = header("logits", model_path, model_sha, meta, notes + extra_notes)
    out += [f"topk {TOPK}", f"prompts {len(PROMPTS)}"] + body
    with open(os.path.join(out_dir, "gemma3_ref_logits.txt"), "w") as fh:
        fh.write("\n".join(out) + "\n")

    # ---- greedy continuation ------------------------------------------------------------------
    text = dict(PROMPTS)[GENERATE_PROMPT]
    ids = hf.encode(text, bos)
    seq, margins = list(ids), []
    for _ in range(N_NEW):
        row = hf.logits(seq)[-1]
        k = top_k(np, row, 2)
        margins.append(float(row[k[0]] - row[k[1]]))
        seq.append(int(k[0]))
    new = seq[len(ids):]
    new_text = hf.tok.decode(new, skip_special_tokens=False)
    gnotes = [f"greedy text: {text!r} + {new_text!r}"]
    if npm is not None:
        zb = npm.logits(seq, list(range(len(ids) - 1, len(seq) - 1)))
        b_new = [int(i) for i in zb.argmax(axis=1)]
        if b_new != new:
            sys.exit(f"greedy tokens differ: transformers {new}, numpy {b_new}")
        gnotes.append("the numpy float64 forward picks the same 8 tokens")
    print(gnotes[0], "margins", [round(m, 3) for m in margins])
    out = header("generate", model_path, model_sha, meta, notes + gnotes)
    out += [f"prompt {GENERATE_PROMPT} {hexs(text)}", f"prompt_ids {len(ids)} " + " ".join(map(str, ids)),
            f"n_new {N_NEW}", f"new_ids {N_NEW} " + " ".join(map(str, new)),
            f"margin {N_NEW} " + " ".join(fmt(m) for m in margins), f"new_text {hexs(new_text)}", "end"]
    with open(os.path.join(out_dir, "gemma3_ref_generate.txt"), "w") as fh:
        fh.write("\n".join(out) + "\n")

    # ---- eval on GPL-3 -----------------------------------------------------------------------
    all_ids = hf.encode(gpl_text, None)
    n_text = EVAL_CHUNK * EVAL_WINDOWS
    if len(all_ids) < n_text:
        sys.exit(f"{args.gpl}: only {len(all_ids)} tokens, need {n_text}")
    text_ids = all_ids[:n_text]
    wins, total, nll_lines, b_total = [], 0.0, [], 0.0
    for w in range(EVAL_WINDOWS):
        win = [bos] + text_ids[EVAL_CHUNK * w: EVAL_CHUNK * (w + 1)]
        z = hf.logits(win).astype(np.float64)
        mx = z.max(axis=1, keepdims=True)
        lp = z - (mx + np.log(np.exp(z - mx).sum(axis=1, keepdims=True)))
        nll = -lp[np.arange(EVAL_CHUNK), win[1:]]
        total += nll.sum()
        wins.append(f"win {w} {EVAL_CHUNK} {fmt(nll.sum())} {fmt(nll.mean())}")
        nll_lines.append(f"nll {w} {EVAL_CHUNK} " + " ".join(fmt(v) for v in nll))
        if npm is not None:
            zb = npm.logits(win, list(range(EVAL_CHUNK)))
            mx = zb.max(axis=1, keepdims=True)
            lpb = zb - (mx + np.log(np.exp(zb - mx).sum(axis=1, keepdims=True)))
            b_total += -lpb[np.arange(EVAL_CHUNK), win[1:]].sum()
    mean = total / n_text
    enotes = [f"GPL-3: {len(all_ids)} tokens in the whole file; mean NLL {mean:.6f}, perplexity {np.exp(mean):.4f}"]
    if npm is not None:
        b_mean = b_total / n_text
        enotes.append(f"numpy float64 forward: mean NLL {b_mean:.6f} (|diff| {abs(b_mean - mean):.2g})")
    print("\n".join(enotes))
    out = header("eval", model_path, model_sha, meta, notes + enotes)
    out += [f"source GPL-3 {hashlib.sha256(gpl_bytes).hexdigest()} {len(gpl_bytes)}", "protocol bos_chunks",
            f"chunk {EVAL_CHUNK}", f"window {EVAL_CHUNK + 1}", f"n_windows {EVAL_WINDOWS}",
            f"text_ids {n_text} " + " ".join(map(str, text_ids))] + wins + nll_lines
    out += [f"n_pred {n_text}", f"nll_sum {fmt(total)}", f"mean_nll {fmt(mean)}",
            f"perplexity {fmt(np.exp(mean))}", "end"]
    with open(os.path.join(out_dir, "gemma3_ref_eval.txt"), "w") as fh:
        fh.write("\n".join(out) + "\n")
    print(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
