#!/usr/bin/env python3
"""Cross-check lorac's LoRA forward pass and its PEFT export against Hugging Face transformers + PEFT.

What it does (nothing here shares code with lorac):
  1. Makes a LoRA adapter for the base GGUF with gguf-py, as a llama.cpp GGUF LoRA file
     (general.type "adapter", adapter.type "lora", adapter.lora.alpha, per projection
     "blk.N.<proj>.weight.lora_a" ne {in, r} and ".lora_b" ne {r, out}; llama.cpp
     convert_lora_to_gguf.py layout), with seeded random A and B (B non-zero, so the adapter changes
     the logits). --adapter uses an existing adapter (a PEFT directory or GGUF file, e.g. from
     `lorac train`) instead.
  2. Has lorac convert it to a PEFT directory: `lorac export --format peft` (the adapter under
     test is the one lorac WROTE).
  3. Has lorac compute the logits of a fixed prompt with the adapter, and without it:
     `lorac export --format logits` (a NumPy .npy [tokens, vocab]; the token ids on stdout).
  4. Loads transformers' model from the SAME GGUF (AutoModelForCausalLM.from_pretrained(dir,
     gguf_file=..., dtype=float32), eager attention), applies the lorac-written PEFT directory with
     PeftModel.from_pretrained, and computes the logits of the same token ids.
  5. Prints max |lorac - transformers| over every position and vocabulary entry, with and without
     the adapter, and how much the adapter moved the logits (so a no-op adapter cannot pass).
Exit status 0 when the adapter logits agree within --tol (default 2e-2) and the adapter moved the
logits by more than 10 * tol; 1 otherwise.

Usage:
  /tmp/venv/bin/python tests/tools/check_peft_logits.py --lorac build/lorac [--model M.gguf]
Needs: numpy, gguf, torch, transformers (5.x), peft. Model default: scripts/get-model.sh's path.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog. In 1969, the first humans landed on"
PROJ = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def default_model():
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "..", "scripts", "get-model.sh")
    return subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()


def make_gguf_adapter(model_path, out_path, r, alpha, seed, amp):
    """A random llama.cpp GGUF LoRA adapter for every projection of the model (gguf-py writer)."""
    import numpy as np
    from gguf import GGUFReader, GGUFWriter

    rd = GGUFReader(model_path)
    arch = bytes(rd.fields["general.architecture"].parts[-1]).decode()
    rng = np.random.default_rng(seed)
    w = GGUFWriter(out_path, arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(alpha))
    n = 0
    for t in rd.tensors:
        m = re.fullmatch(r"blk\.(\d+)\.([a-z_]+)\.weight", t.name)
        if not m or m.group(2) not in PROJ:
            continue
        ne_in, ne_out = int(t.shape[0]), int(t.shape[1])
        a = (rng.uniform(-1, 1, size=(r, ne_in)) / np.sqrt(ne_in)).astype(np.float32)  # ne {in, r}
        b = (rng.uniform(-1, 1, size=(ne_out, r)) * amp).astype(np.float32)           # ne {r, out}
        w.add_tensor(t.name + ".lora_a", a)
        w.add_tensor(t.name + ".lora_b", b)
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n


def lorac_logits(lorac, model, adapter, prompt, out, device, threads):
    cmd = [lorac, "export", "--model", model, "--format", "logits", "--prompt", prompt, "--out", out,
           "--device", device, "--threads", str(threads)]
    if adapter:
        cmd += ["--adapter", adapter]
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    ids = [int(x) for x in re.search(r"^ids:(.*)$", p.stdout, re.M).group(1).split()]
    import numpy as np
    return ids, np.load(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lorac", required=True, help="the lorac binary")
    ap.add_argument("--model", help="base GGUF (default: scripts/get-model.sh)")
    ap.add_argument("--adapter", help="existing adapter (PEFT dir or GGUF) instead of a random one")
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--amp", type=float, default=0.05, help="lora_B values are U(-amp, amp)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tol", type=float, default=2e-2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", help="keep the files here (default: a temporary directory)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = os.path.abspath(args.model or default_model())
    work = args.workdir or tempfile.mkdtemp(prefix="lorac_peft_check_")
    os.makedirs(work, exist_ok=True)
    src = args.adapter
    if not src:
        src = os.path.join(work, "random_adapter.gguf")
        n = make_gguf_adapter(model, src, args.rank, args.alpha, args.seed, args.amp)
        print(f"adapter: {n} modules, r {args.rank}, lora_alpha {args.alpha} (gguf-py, seed {args.seed}) -> {src}")
    peft_dir = os.path.join(work, "peft")
    subprocess.run([args.lorac, "export", "--model", model, "--adapter", src, "--format", "peft", "--out", peft_dir,
                    "--device", args.device], check=True)
    print(f"lorac export --format peft -> {peft_dir}")

    ids, l_ad = lorac_logits(args.lorac, model, peft_dir, args.prompt, os.path.join(work, "lorac_adapter.npy"),
                             args.device, args.threads)
    ids2, l_base = lorac_logits(args.lorac, model, None, args.prompt, os.path.join(work, "lorac_base.npy"),
                                args.device, args.threads)
    assert ids == ids2
    print(f"prompt: {args.prompt!r} -> {len(ids)} tokens {ids}")

    torch.set_num_threads(args.threads)
    d, f = os.path.split(model)
    hf = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    hf.eval()
    with torch.no_grad():
        h_base = hf(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
    pm = PeftModel.from_pretrained(hf, peft_dir)
    pm.eval()
    n_lora = sum(1 for name, _ in pm.named_modules() if name.endswith(".lora_A"))
    with torch.no_grad():
        h_ad = pm(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()

    def cmp(a, b):
        dd = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return dd.max(), dd.mean(), int((a.argmax(-1) == b.argmax(-1)).sum())

    mb = cmp(l_base, h_base)
    ma = cmp(l_ad, h_ad)
    eff = np.abs(h_ad.astype(np.float64) - h_base).max()
    T = len(ids)
    print(f"PEFT modules with lora_A in transformers: {n_lora}")
    print(f"base    : max |lorac - transformers| {mb[0]:.4g}, mean {mb[1]:.3g}, argmax equal at {mb[2]}/{T} positions")
    print(f"adapter : max |lorac - transformers| {ma[0]:.4g}, mean {ma[1]:.3g}, argmax equal at {ma[2]}/{T} positions")
    print(f"adapter effect in transformers: max |logits(adapter) - logits(base)| {eff:.4g}")
    ok = ma[0] <= args.tol and eff > 10 * args.tol
    print("PASS" if ok else "FAIL", f"(tolerance {args.tol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
