#!/usr/bin/env python3
"""Cross-check lorac's GGUF LoRA adapters and merged models against llama.cpp (llama-cpp-python).

What it does:
  1. Makes a random LoRA adapter for the base GGUF with gguf-py (llama.cpp GGUF LoRA layout, see
     check_peft_logits.py), or takes --adapter; has lorac convert it to PEFT and back to a llama.cpp
     GGUF LoRA file (`lorac export --format peft`, then `--format gguf`): the file under test is the
     one lorac WROTE.
  2. llama.cpp: Llama(model_path=BASE, lora_path=LORAC_GGUF_ADAPTER), greedy (top_k 1, temp 0, no
     repeat penalty) 32 tokens for a fixed prompt (BOS + prompt, special tokens parsed), stopping at
     EOS / <end_of_turn> as lorac does; the text is llama.cpp's detokenisation of the new tokens.
  3. lorac: `lorac generate --model BASE --adapter LORAC_GGUF_ADAPTER --temp 0 -n 32`.
  4. lorac merge (--dtype f32 and f16) then `lorac generate --model MERGED --temp 0 -n 32`, and
     llama.cpp greedy on the merged f16 file (it must load; its text is printed next to
     llama.cpp + adapter).
  5. The logits of every prompt position, llama.cpp (logits_all) against `lorac export --format
     logits`, with and without the adapter: max and mean |difference| and argmax agreement.
     (llama.cpp multiplies quantized weights by activations it quantizes to 8 bits, so expect
     differences of order 1 on Gemma's large logits where lorac and transformers agree to 1e-4.)
Prints for each pair whether the continuations match exactly, else the first differing character
(and the llama.cpp token index where it falls). Exit status 0 when lorac+adapter equals
llama.cpp+adapter and the merged f32 model equals lorac+adapter; 1 otherwise. lora_B is
U(-amp, amp) with amp 0.1 by default: large enough to change the greedy continuation, while 0.3
makes the model emit near-uniform noise whose greedy path any rounding difference flips.

Usage:
  /tmp/venv/bin/python tests/tools/check_llamacpp_adapter.py --lorac build/lorac [--model M.gguf]
Needs: numpy, gguf, llama-cpp-python. Model default: scripts/get-model.sh's path.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_peft_logits import DEFAULT_PROMPT, default_model, make_gguf_adapter  # noqa: E402


def llama_greedy(model, lora, prompt, n, threads):
    from llama_cpp import Llama

    import numpy as np

    kw = dict(model_path=model, n_ctx=256, n_threads=threads, n_batch=256, verbose=False, seed=0, logits_all=True)
    if lora:
        kw["lora_path"] = lora
    llm = Llama(**kw)
    toks = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    llm.eval(toks)
    scores = np.array(llm.scores[: len(toks)], dtype=np.float32)  # logits after each prompt token
    llm.reset()
    stop = {llm.token_eos()}
    for s in ("<end_of_turn>", "<|eot_id|>", "<|im_end|>"):
        t = llm.tokenize(s.encode(), add_bos=False, special=True)
        if len(t) == 1:
            stop.add(t[0])
    out = []
    for t in llm.generate(toks, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
        if t in stop or len(out) >= n:
            break
        out.append(t)
    pieces = [llm.detokenize([t], prev_tokens=toks + out[:i]).decode("utf-8", "replace") for i, t in enumerate(out)]
    del llm
    return toks, out, pieces, scores


def lorac_generate(lorac, model, adapter, prompt, n, device, threads):
    cmd = [lorac, "generate", "--model", model, "--prompt", prompt, "--temp", "0", "-n", str(n), "--device", device,
           "--threads", str(threads)]
    if adapter:
        cmd += ["--adapter", adapter]
    p = subprocess.run(cmd, check=True, capture_output=True)
    out = p.stdout.decode("utf-8", "replace")
    return out[:-1] if out.endswith("\n") else out  # lorac generate ends its output with one newline


def compare(label, a_name, a, b_name, b, pieces=None):
    if a == b:
        print(f"{label}: MATCH ({len(a)} chars)")
        return True
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    where = ""
    if pieces is not None:
        acc = 0
        for k, p in enumerate(pieces):
            acc += len(p)
            if acc > i:
                where = f", in token {k} of {len(pieces)}"
                break
    print(f"{label}: DIFFER at char {i}{where}\n  {a_name}: {a!r}\n  {b_name}: {b!r}")
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lorac", required=True)
    ap.add_argument("--model")
    ap.add_argument("--adapter", help="existing adapter (PEFT dir or GGUF) instead of a random one")
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--amp", type=float, default=0.1,
                    help="lora_B values are U(-amp, amp); large enough to change the greedy continuation")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir")
    args = ap.parse_args()

    model = os.path.abspath(args.model or default_model())
    work = args.workdir or tempfile.mkdtemp(prefix="lorac_llamacpp_check_")
    os.makedirs(work, exist_ok=True)
    L = args.lorac
    src = args.adapter
    if not src:
        src = os.path.join(work, "random_adapter.gguf")
        k = make_gguf_adapter(model, src, args.rank, args.alpha, args.seed, args.amp)
        print(f"adapter: {k} modules, r {args.rank}, lora_alpha {args.alpha} (gguf-py, seed {args.seed})")
    peft_dir, lora = os.path.join(work, "peft"), os.path.join(work, "lorac_adapter.gguf")
    run = lambda *a: subprocess.run([L, *a, "--device", args.device], check=True, capture_output=True)  # noqa: E731
    run("export", "--model", model, "--adapter", src, "--format", "peft", "--out", peft_dir)
    run("export", "--model", model, "--adapter", peft_dir, "--format", "gguf", "--out", lora)
    merged32, merged16 = os.path.join(work, "merged_f32.gguf"), os.path.join(work, "merged_f16.gguf")
    for path, dt in ((merged32, "f32"), (merged16, "f16")):
        p = run("merge", "--model", model, "--adapter", lora, "--out", path, "--dtype", dt, "-q")
        print(f"lorac merge --dtype {dt}: {p.stdout.decode().strip()}")

    toks, ids, pieces, s_ad = llama_greedy(model, lora, args.prompt, args.n, args.threads)
    ll_ad = "".join(pieces)
    print(f"prompt: {args.prompt!r} ({len(toks)} tokens with BOS)")
    print(f"llama.cpp + adapter ids: {ids}")
    _, ids_b, pieces_b, s_base = llama_greedy(model, None, args.prompt, args.n, args.threads)
    _, ids_m, pieces_m, _ = llama_greedy(merged16, None, args.prompt, args.n, args.threads)
    import numpy as np
    for label, ad, ref in (("base", None, s_base), ("adapter", lora, s_ad)):
        out = os.path.join(work, f"lorac_logits_{label}.npy")
        run("export", "--model", model, *(["--adapter", ad] if ad else []), "--format", "logits", "--prompt",
            args.prompt, "--out", out, "--threads", str(args.threads))
        lo = np.load(out)
        if lo.shape != ref.shape:
            print(f"prompt logits {label}: shapes differ (lorac {lo.shape}, llama.cpp {ref.shape}): tokenization?")
            continue
        d = np.abs(lo.astype(np.float64) - ref)
        print(f"prompt logits {label}: max |lorac - llama.cpp| {d.max():.4g}, mean {d.mean():.3g}, argmax equal at "
              f"{int((lo.argmax(-1) == ref.argmax(-1)).sum())}/{len(toks)} positions")
    lo_ad = lorac_generate(L, model, lora, args.prompt, args.n, args.device, args.threads)
    lo_base = lorac_generate(L, model, None, args.prompt, args.n, args.device, args.threads)
    lo_m32 = lorac_generate(L, merged32, None, args.prompt, args.n, args.device, args.threads)
    lo_m16 = lorac_generate(L, merged16, None, args.prompt, args.n, args.device, args.threads)

    ok1 = compare("lorac + adapter vs llama.cpp + adapter", "lorac", lo_ad, "llama.cpp", ll_ad, pieces)
    compare("lorac base vs llama.cpp base", "lorac", lo_base, "llama.cpp", "".join(pieces_b), pieces_b)
    ok2 = compare("lorac merged f32 vs lorac + adapter", "merged", lo_m32, "adapter", lo_ad, pieces)
    compare("lorac merged f16 vs lorac + adapter", "merged", lo_m16, "adapter", lo_ad, pieces)
    compare("llama.cpp merged f16 vs llama.cpp + adapter", "merged", "".join(pieces_m), "adapter", ll_ad, pieces)
    print(f"adapter changes the greedy continuation (llama.cpp): {ids_b != ids}")
    ok = ok1 and ok2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
