#!/usr/bin/env python3
"""Make tests/fixtures/tokenizer_gemma3.txt: expected token ids for a varied text set, computed
by two independent tokenizers, plus the reduced vocabulary that reproduces them.

Usage:
    python3 tests/tools/make_tokenizer_fixture.py --model /path/gemma-3-270m-q4_k_m.gguf \
        [--out tests/fixtures/tokenizer_gemma3.txt] [--full-vocab-out /tmp/full.txt]

Needs: pip install gguf transformers tokenizers sentencepiece protobuf   (torch is not needed)

Independent references (neither shares code with lorac):
  A. Hugging Face transformers: PreTrainedTokenizerFast.from_pretrained(dir, gguf_file=...) --
     transformers' own GGUF reader and Gemma converter, run by the Rust `tokenizers` BPE.
     Its GGUF reader module imports torch only for tensors; when torch is absent a stub module
     stands in (the tokenizer path never touches a tensor).
  B. Google sentencepiece: a ModelProto (model_type BPE, byte_fallback, identity normalizer, no
     dummy prefix, whitespace escaping) built from the file's tokens/scores/types, encoded by the
     sentencepiece C++ library. Gemma stores its user-defined space runs with real spaces; they
     are respelled with U+2581 as in the original tokenizer.model.
Both must agree on every text with special-token parsing off (A with encode_special_tokens,
B as is). With parsing on, A is checked against B run on the text split at CONTROL tokens.
The script stops if they disagree, except on the cases listed in HF_NOT_FAITHFUL, where B's ids
are written: transformers' Gemma GGUF converter respells the USER_DEFINED space-run tokens
("  " .. 31 spaces) as ordinary BPE tokens built by merges instead of matching them whole, so a
run of more than 31 spaces splits differently (40 spaces: 16+24 instead of sentencepiece's and
llama.cpp's 31+9).

The fixture (text, one record a line, strings as lowercase hex of their UTF-8 bytes):
    lorac-tokenizer-fixture 1
    model <file name>
    n_vocab N
    bos B / eos E / unk U / pad P / add_bos 0|1 / add_eos 0|1 / add_space_prefix 0|1
    vocab K                              then K lines: <id> <type> <score> <hex text>
    cases C                              then per case:
      case <name> <roundtrip 0|1> <hex text>
      plain <n> <ids...>                 ids with parse_special off, add_special off
      special <n> <ids...>               ids with parse_special on, add_special off
The reduced vocabulary holds every token whose text is a substring of a test text (raw, with
0x20 -> U+2581, and with a U+2581 prefix), all BYTE tokens and the CONTROL/UNKNOWN/USER_DEFINED
tokens with id < 256 or that occur in a text. SPM merges only ever form substrings of the
escaped input, so the full tokenizer and the reduced one give the same ids; the loader fills the
other ids with UNUSED placeholders.
"""

import argparse
import os
import sys
import types as pytypes

import numpy as np

# ---- the text set ------------------------------------------------------------------------------
LONG_PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. In 1867, the United States purchased Alaska "
    "from Russia for $7.2 million, roughly two cents per acre; critics called it \"Seward's "
    "Folly\" until gold was discovered in the Klondike three decades later. Today, researchers "
    "fine-tune large language models with low-rank adapters (LoRA), which add a small trainable "
    "update B*A to frozen weight matrices, cutting memory use by an order of magnitude while "
    "keeping quality close to full fine-tuning. Tokenizers, meanwhile, remain a quiet source of "
    "bugs: a missing space, a doubled beginning-of-sequence token, or an unexpected byte can "
    "shift every position that follows."
)

TEXTS = [
    # name, text, round trip expected
    ("hello", "Hello world", True),
    ("lead_space", " Hello world", True),
    ("double_space", "Hello  world", True),
    ("trailing_space", "Hello world ", True),
    ("many_spaces", "   three leading,    four inside, trailing   ", True),
    ("space_run_40", "x" + " " * 40 + "y and" + " " * 33 + "z", True),
    ("only_space", " ", True),
    ("newlines", "line one\nline two\n\nline four\r\nend\n", True),
    ("newline_run", "a" + "\n" * 35 + "b", True),
    ("tabs", "\ttab\tseparated\t\tvalues\n\t\t\tindented", True),
    ("digits", "Digits: 0 1 12 123 1234 12345 3.14159 -42 1e-9 2024-06-01 0x1F 1,000,000", True),
    ("punct", "Punctuation!? (parens) [brackets] {braces} \"quotes\" 'single' ... --- ;:, @#$%^&*~`|\\/", True),
    ("accents", "Accents: café, naïve, résumé, Ångström, São Paulo, Zürich, façade, Œuvre, ß", True),
    ("emoji", "Emoji: 😀 👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️ 🦀🧬", True),
    ("cjk", "CJK: 日本語のテキストです。中文文本，简体字。한국어 텍스트입니다.", True),
    ("arabic", "Arabic: مرحبا بالعالم؛ هذا نص عربي قصير.", True),
    ("scripts", "Привет, мир! नमस्ते दुनिया। สวัสดีชาวโลก Γειά σου κόσμε", True),
    ("python", "def f(x):\n    return x * 2  # double\n\nfor i in range(10):\n\tprint(f(i))\n", True),
    ("c_code", "int main(void) {\n  printf(\"%d\\n\", 42);\n  return 0;\n}\n", True),
    ("html", "<table><tr><td>cell</td></tr></table> <b>bold</b> <code>x</code>", True),
    ("url", "URL: https://example.com/path?q=1&r=2#frag, mail user.name+tag@test.org", True),
    ("math", "∑_{i=1}^{n} x_i² ≤ ∞, α β γ δ ∂f/∂x ≈ 0.5 · 10⁻³", True),
    ("rare", "Rare: 𓀀 𠀋 \u0001\u007f \u200b end", True),
    ("single_char", "a", True),
    ("single_punct", ".", True),
    ("long_paragraph", LONG_PARAGRAPH, True),
    ("chat", "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n", False),
    ("bos_text", "<bos>Text that starts with the BOS piece", False),
    ("control_mid", "before<eos>after <pad> <unk> <mask>", False),
    ("lower_one_eighth_block", "a\u2581b", False),  # a literal U+2581 decodes as a space
]


# Cases where reference A is known to be wrong (see the docstring); reference B is used there.
HF_NOT_FAITHFUL = {"space_run_40"}


def hexs(b: bytes) -> str:
    return b.hex()


# ---- reading the GGUF (gguf package) -----------------------------------------------------------
def read_gguf_vocab(path):
    from gguf import GGUFReader

    r = GGUFReader(path)

    def scalar(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        return f.contents()

    def array(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    tok_field = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tok_field.parts[i]) for i in tok_field.data]
    scores = np.array([a[0] for a in array("tokenizer.ggml.scores")], dtype=np.float32)
    types = np.array([a[0] for a in array("tokenizer.ggml.token_type")], dtype=np.int32)
    meta = {
        "model": scalar("tokenizer.ggml.model"),
        "bos": scalar("tokenizer.ggml.bos_token_id", 1),
        "eos": scalar("tokenizer.ggml.eos_token_id", 2),
        "unk": scalar("tokenizer.ggml.unknown_token_id", 0),
        "pad": scalar("tokenizer.ggml.padding_token_id", -1),
        "add_bos": bool(scalar("tokenizer.ggml.add_bos_token", True)),
        "add_eos": bool(scalar("tokenizer.ggml.add_eos_token", False)),
        "add_space_prefix": bool(scalar("tokenizer.ggml.add_space_prefix", True)),
    }
    if meta["model"] != "llama":
        sys.exit(f"{path}: tokenizer.ggml.model is {meta['model']!r}, not an SPM ('llama') vocabulary")
    return tokens, scores, types, meta


# ---- reference A: transformers ---------------------------------------------------------------
def load_hf(path):
    import transformers  # noqa: F401  (imported before any torch stub is installed)
    from transformers import PreTrainedTokenizerFast

    try:
        import torch  # noqa: F401
    except ImportError:

        class _TorchStub(pytypes.ModuleType):
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                return type(name, (), {})

        sys.modules["torch"] = _TorchStub("torch")
    d, f = os.path.split(os.path.abspath(path))
    tok = PreTrainedTokenizerFast.from_pretrained(d, gguf_file=f)
    return tok.backend_tokenizer


def hf_encode(bt, text, parse_special):
    bt.encode_special_tokens = not parse_special
    return bt.encode(text, add_special_tokens=False).ids


# ---- reference B: sentencepiece --------------------------------------------------------------
def load_sp(tokens, scores, types, meta):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id = meta["unk"]
    m.trainer_spec.bos_id = meta["bos"]
    m.trainer_spec.eos_id = meta["eos"]
    m.trainer_spec.pad_id = meta["pad"]
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = meta["add_space_prefix"]
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for t, s, ty in zip(tokens, scores, types):
        p = m.pieces.add()
        text = t.decode("utf-8")
        if ty == 4 and " " in text and not text.strip(" "):
            text = "\u2581" * len(text)
        p.piece = text
        p.score = float(s)
        p.type = int(ty)  # GGUF and SentencePiece number the types the same way
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return sp


def sp_encode(sp, text, control_texts):
    """sentencepiece never matches CONTROL pieces in text, so split at them first (leftmost,
    longest) and encode the pieces in between."""
    if not control_texts:
        return sp.encode(text)
    import re

    pat = re.compile("|".join(re.escape(c) for c in sorted(control_texts, key=len, reverse=True)))
    ids, pos = [], 0
    for mt in pat.finditer(text):
        if mt.start() > pos:
            ids += sp.encode(text[pos : mt.start()])
        ids.append(control_texts[mt.group(0)])
        pos = mt.end()
    if pos < len(text):
        ids += sp.encode(text[pos:])
    return ids


# ---- the fixture -----------------------------------------------------------------------------
def reduced_ids(tokens, types, texts):
    hay = []
    for _, t, _ in texts:
        b = t.encode("utf-8")
        esc = b.replace(b" ", "\u2581".encode())
        hay += [b, esc, "\u2581".encode() + esc]
    keep = set()
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty == 6 or (ty in (2, 3, 4) and i < 256):
            keep.add(i)
        elif t and any(t in h for h in hay):
            keep.add(i)
    return sorted(keep)


def write_vocab(fh, ids, tokens, scores, types):
    fh.write(f"vocab {len(ids)}\n")
    for i in ids:
        fh.write(f"{i} {int(types[i])} {float(scores[i]):.9g} {hexs(tokens[i])}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("LORAC_TEST_MODEL", "/tmp/models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "tokenizer_gemma3.txt"))
    ap.add_argument("--full-vocab-out", help="also write the whole vocabulary in the same format (for local checks)")
    args = ap.parse_args()

    tokens, scores, types, meta = read_gguf_vocab(args.model)
    n_vocab = len(tokens)
    bt = load_hf(args.model)
    sp = load_sp(tokens, scores, types, meta)
    control_texts = {t.decode("utf-8"): i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3 and t}

    cases = []
    bad = 0
    for name, text, rt in TEXTS:
        plain_hf = hf_encode(bt, text, parse_special=False)
        special_hf = hf_encode(bt, text, parse_special=True)
        plain_sp = sp.encode(text)
        special_sp = sp_encode(sp, text, control_texts)
        for what, a, b in (("plain", plain_hf, plain_sp), ("special", special_hf, special_sp)):
            if a != b:
                if name in HF_NOT_FAITHFUL:
                    print(f"known transformers difference on {name} {what}: using sentencepiece", file=sys.stderr)
                    continue
                bad += 1
                print(f"DISAGREE {name} {what}:\n  hf {a}\n  sp {b}\n  hf {[tokens[i] for i in a]}\n"
                      f"  sp {[tokens[i] for i in b]}", file=sys.stderr)
        if name in HF_NOT_FAITHFUL:
            if plain_hf == plain_sp:
                print(f"note: {name} is listed in HF_NOT_FAITHFUL but the references agree", file=sys.stderr)
            cases.append((name, text, rt, plain_sp, special_sp))
        else:
            cases.append((name, text, rt, plain_hf, special_hf))
        print(f"{name:24s} plain {len(plain_hf):4d} ids, special {len(special_hf):4d} ids")
    if bad:
        sys.exit(f"{bad} disagreement(s) between transformers and sentencepiece; no fixture written")

    keep = reduced_ids(tokens, types, TEXTS)
    used = {i for c in cases for i in c[3] + c[4]}
    missing = used - set(keep)
    if missing:
        sys.exit(f"reduced vocabulary misses used ids {sorted(missing)[:20]}")

    def header(fh):
        fh.write("lorac-tokenizer-fixture 1\n")
        fh.write("# made by tests/tools/make_tokenizer_fixture.py; ids agreed by transformers "
                 "(GGUF tokenizer) and sentencepiece\n")
        fh.write(f"# sentencepiece only (transformers not faithful): {' '.join(sorted(HF_NOT_FAITHFUL))}\n")
        fh.write(f"model {os.path.basename(args.model)}\n")
        fh.write(f"n_vocab {n_vocab}\n")
        for k in ("bos", "eos", "unk", "pad"):
            fh.write(f"{k} {int(meta[k])}\n")
        for k in ("add_bos", "add_eos", "add_space_prefix"):
            fh.write(f"{k} {int(meta[k])}\n")

    with open(args.out, "w", encoding="ascii", newline="\n") as fh:
        header(fh)
        write_vocab(fh, keep, tokens, scores, types)
        fh.write(f"cases {len(cases)}\n")
        for name, text, rt, plain, special in cases:
            fh.write(f"case {name} {int(rt)} {hexs(text.encode('utf-8'))}\n")
            fh.write(f"plain {len(plain)}{''.join(' ' + str(i) for i in plain)}\n")
            fh.write(f"special {len(special)}{''.join(' ' + str(i) for i in special)}\n")
    print(f"wrote {args.out}: {len(keep)} of {n_vocab} tokens, {len(cases)} cases, "
          f"{os.path.getsize(args.out)} bytes")

    if args.full_vocab_out:
        with open(args.full_vocab_out, "w", encoding="ascii", newline="\n") as fh:
            header(fh)
            write_vocab(fh, range(n_vocab), tokens, scores, types)
            fh.write("cases 0\n")
        print(f"wrote {args.full_vocab_out}")


if __name__ == "__main__":
    main()
