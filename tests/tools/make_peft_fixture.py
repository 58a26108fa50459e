#!/usr/bin/env python3
"""Make the safetensors and PEFT fixtures of tests/test_safetensors.c and tests/test_adapter.c with
the real PyPI packages (safetensors, torch, transformers, peft), so lorac's readers are checked
against independent writers.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers peft safetensors numpy
    /tmp/venv/bin/python tests/tools/make_peft_fixture.py [fixture_dir]     # default tests/fixtures
    /tmp/venv/bin/python tests/tools/make_peft_fixture.py --check DIR ARCH  # see check_adapter()

Made with torch 2.15, transformers 5.24, peft 0.21.2, safetensors 0.8.0, numpy 2.4.
The C tests hard-code what the docstrings below say; change both together.

safetensors_fixture.safetensors (safetensors.torch.save_file, metadata {"format": "pt",
"source": "lorac fixture"}):
    "matrix"  F32  [3, 5]  value r*10 + c, except matrix[1, 3] = 42.0 and matrix[2, 0] = -7.5
    "half"    F16  [2, 3]  [[1, -2, 0.5], [65504, 2**-24, -0.0]]
    "brain"   BF16 [2, 2]  [[1, -3.140625], [1e-3 rounded to bf16, 65280]]
    "double"  F64  [2]     [0.1, -2.5]
    "ids"     I32  [4]     [1, -2, 3, 2147483647]
    "big"     I64  [2]     [-(2**40), 2**62]
    "bytes"   U8   [5]     [0, 1, 127, 128, 255]
    "flags"   BOOL [3]     [True, False, True]
    "scalar"  F32  []      3.5
    "empty"   F32  [0, 4]

PEFT adapters (PeftModel.save_pretrained of get_peft_model(model, LoraConfig(...)); every lora_A /
lora_B filled from torch.Generator(seed) normal values so that B is non-zero; README.md removed):
    peft_llama/         LlamaForCausalLM (vocab 64, hidden 32, intermediate 48, 2 layers, 4 heads,
                        2 kv heads, head_dim 8); r=3, lora_alpha=6, lora_dropout=0.05, all seven
                        projections; rank_pattern {"layers.1.self_attn.k_proj": 5} (a plain suffix
                        key), alpha_pattern {"model\\.layers\\.0\\.mlp\\.down_proj": 12} (a regular
                        expression); saved F32.
    peft_qwen2_r1/      Qwen2ForCausalLM (same sizes); r=1, lora_alpha=2, q_proj and v_proj; saved F16.
    peft_qwen2_rslora/  Qwen2ForCausalLM (same sizes); r=4, lora_alpha=8, use_rslora, k_proj, o_proj
                        and up_proj of layer 1 only (layers_to_transform [1]); saved BF16.
For each, peft_<name>_expect.txt lists, in lorac's layout (A ne {in, r}: flat index k*in + i of
PyTorch A[k, i]; B ne {r, out}: flat index o*r + k of B[o, k], where for Llama q_proj / k_proj the
rows o are first permuted as convert_hf_to_gguf.py's LlamaModel.permute does):
    module <layer> <hf name> <r> <lora_alpha> <scaling>        (scaling as PEFT's layer holds it)
    value  <layer> <hf name> <a|b> <flat index> <value>        (a few elements per tensor)
    sum    <layer> <hf name> <a|b> <sum> <weighted sum>        (weighted: sum of v[i] * (i % 7 + 1))
"""
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 32, 48, 2, 4, 2, 8, 64
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_safetensors(out_dir):
    m = np.array([[r * 10 + c for c in range(5)] for r in range(3)], dtype=np.float32)
    m[1, 3] = 42.0
    m[2, 0] = -7.5
    tensors = {
        "matrix": torch.from_numpy(m),
        "half": torch.tensor([[1, -2, 0.5], [65504, 2**-24, -0.0]], dtype=torch.float16),
        "brain": torch.tensor([[1, -3.140625], [1e-3, 65280]], dtype=torch.bfloat16),
        "double": torch.tensor([0.1, -2.5], dtype=torch.float64),
        "ids": torch.tensor([1, -2, 3, 2147483647], dtype=torch.int32),
        "big": torch.tensor([-(2**40), 2**62], dtype=torch.int64),
        "bytes": torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8),
        "flags": torch.tensor([True, False, True], dtype=torch.bool),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
    }
    save_file(tensors, os.path.join(out_dir, "safetensors_fixture.safetensors"),
              metadata={"format": "pt", "source": "lorac fixture"})


def tiny_model(arch):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    kw = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
              num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM)
    torch.manual_seed(0)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**kw))
    return Qwen2ForCausalLM(Qwen2Config(**kw))


def gguf_permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute (rows of a [out, ...] array, n_head heads)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def lora_modules(peft_model):
    """(layer, hf name, LoraLayer) for every LoRA-wrapped projection."""
    out = []
    for name, mod in peft_model.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            parts = name.split(".")
            layer = int(parts[parts.index("layers") + 1])
            out.append((layer, parts[-1], mod))
    out.sort(key=lambda t: (t[0], ALL.index(t[1])))
    return out


def make_peft(out_dir, name, arch, lora_kwargs, dtype, seed):
    from peft import LoraConfig, get_peft_model
    model = tiny_model(arch)
    cfg = LoraConfig(task_type="CAUSAL_LM", **lora_kwargs)
    pm = get_peft_model(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, _, mod in lora_modules(pm):
            for p in (mod.lora_A["default"].weight, mod.lora_B["default"].weight):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    pm = pm.to(dtype)
    d = os.path.join(out_dir, name)
    shutil.rmtree(d, ignore_errors=True)
    pm.save_pretrained(d)
    readme = os.path.join(d, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    rng = np.random.default_rng(seed)
    lines = []
    for layer, hf, mod in lora_modules(pm):
        a = mod.lora_A["default"].weight.detach().float().numpy()  # [r, in], values of the saved dtype
        b = mod.lora_B["default"].weight.detach().float().numpy()  # [out, r]
        r = a.shape[0]
        alpha = mod.lora_alpha["default"]
        lines.append(f"module {layer} {hf} {r} {alpha:.9g} {mod.scaling['default']:.9g}")
        if arch == "llama" and hf == "q_proj":
            b = gguf_permute(b, HEADS)
        elif arch == "llama" and hf == "k_proj":
            b = gguf_permute(b, KV_HEADS)
        for tag, t in (("a", a), ("b", b)):
            flat = np.ascontiguousarray(t).reshape(-1).astype(np.float64)
            n = flat.size
            picks = sorted({0, n - 1, int(rng.integers(n)), int(rng.integers(n)), int(rng.integers(n))})
            for i in picks:
                lines.append(f"value {layer} {hf} {tag} {i} {flat[i]:.9g}")
            w = (np.arange(n) % 7 + 1).astype(np.float64)
            lines.append(f"sum {layer} {hf} {tag} {flat.sum():.17g} {(flat * w).sum():.17g}")
    with open(os.path.join(out_dir, f"{name}_expect.txt"), "w") as f:
        f.write(f"# made by tests/tools/make_peft_fixture.py: {name} ({arch})\n")
        f.write("\n".join(lines) + "\n")


def check_adapter(adapter_dir, arch):
    """Load an adapter that lorac wrote into PEFT for the tiny model of `arch` (llama / qwen2) and
    report what PEFT saw: missing or unexpected keys (PEFT only warns about them), each module's
    r, alpha and scaling, and whether every loaded tensor equals the file."""
    import warnings
    from peft import PeftModel
    from safetensors.numpy import load_file
    model = tiny_model(arch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, adapter_dir)
    bad = [str(w.message) for w in caught if "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower()]
    file = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    n_ok = 0
    for layer, hf, mod in lora_modules(pm):
        blk = "self_attn" if hf in ALL[:4] else "mlp"
        key = f"base_model.model.model.layers.{layer}.{blk}.{hf}"
        for tag, p in (("A", mod.lora_A["default"].weight), ("B", mod.lora_B["default"].weight)):
            ok = np.array_equal(p.detach().numpy(), file[f"{key}.lora_{tag}.weight"])
            n_ok += ok
            if not ok:
                bad.append(f"{key}.lora_{tag} differs from the file")
        print(f"module {layer} {hf} r={mod.r['default']} alpha={mod.lora_alpha['default']} "
              f"scaling={mod.scaling['default']:.9g}")
    print(f"{n_ok} tensors equal to the file, {len(file)} keys in the file")
    for b in bad:
        print("PROBLEM:", b)
    return 1 if bad or n_ok != len(file) else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--check":
        sys.exit(check_adapter(sys.argv[2], sys.argv[3]))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    make_safetensors(out_dir)
    make_peft(out_dir, "peft_llama", "llama",
              dict(r=3, lora_alpha=6, lora_dropout=0.05, target_modules=ALL,
                   rank_pattern={"layers.1.self_attn.k_proj": 5},
                   alpha_pattern={r"model\.layers\.0\.mlp\.down_proj": 12}),
              torch.float32, 11)
    make_peft(out_dir, "peft_qwen2_r1", "qwen2",
              dict(r=1, lora_alpha=2, target_modules=["q_proj", "v_proj"]), torch.float16, 12)
    make_peft(out_dir, "peft_qwen2_rslora", "qwen2",
              dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["k_proj", "o_proj", "up_proj"],
                   layers_to_transform=[1]), torch.bfloat16, 13)


if __name__ == "__main__":
    main()
