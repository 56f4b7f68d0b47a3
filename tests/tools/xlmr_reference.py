#!/usr/bin/env python3
"""An independent PyTorch re-implementation of Hugging Face XLM-RoBERTa, used only to generate
the golden fixtures in tests/data/golden/ (the C++ tests read the fixtures; they never need torch).

It follows transformers' modeling_xlm_roberta.py (RoBERTa) semantics with the same parameter
names, written from scratch on torch.nn.functional:
  position ids   = cumsum(ids != pad) * (ids != pad) + pad        (real tokens start at pad + 1)
  embeddings     = LN(word[ids] + position[pos] + token_type[0])
  attention      = softmax(q k^T / sqrt(hs) + (1 - mask) * finfo.min) v
  layer (post-LN)= h1 = LN(x + Wo attn(x)); out = LN(h1 + W2 gelu_erf(W1 h1))
  MLM head       = decoder(LN(gelu(dense(x)))) + bias, decoder tied to word embeddings
  cls head       = out_proj(tanh(dense(x[:, 0])))

Usage: python3 tests/tools/xlmr_reference.py OUT_DIR   (Debian: apt-get install python3-torch;
run with /usr/bin/python3). Writes one directory per fixture with config.json, model.safetensors
and expected.safetensors (inputs and every layer's hidden states).
"""
import json
import math
import os
import struct
import subprocess
import sys

import torch
import torch.nn.functional as F


def write_safetensors(path, tensors, metadata=None):
    """safetensors by hand (no extra package): JSON header padded to 8 bytes, then raw data."""
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def init_params(cfg, gen, prefix, with_lm_head, with_classifier, num_labels=3):
    """Random weights. Scale 0.2 (not HF's 0.02) so activations are not all near zero and
    the comparison exercises GELU/softmax away from their linear regimes."""
    C, FF, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    p = {}

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    e = prefix + "embeddings."
    p[e + "word_embeddings.weight"] = rnd(cfg["vocab_size"], C)
    p[e + "position_embeddings.weight"] = rnd(cfg["max_position_embeddings"], C)
    p[e + "token_type_embeddings.weight"] = rnd(cfg["type_vocab_size"], C)
    p[e + "LayerNorm.weight"] = 1 + rnd(C, scale=0.1)
    p[e + "LayerNorm.bias"] = rnd(C, scale=0.1)
    for i in range(L):
        b = f"{prefix}encoder.layer.{i}."
        for n in ("query", "key", "value"):
            p[b + f"attention.self.{n}.weight"] = rnd(C, C)
            p[b + f"attention.self.{n}.bias"] = rnd(C, scale=0.1)
        p[b + "attention.output.dense.weight"] = rnd(C, C)
        p[b + "attention.output.dense.bias"] = rnd(C, scale=0.1)
        p[b + "attention.output.LayerNorm.weight"] = 1 + rnd(C, scale=0.1)
        p[b + "attention.output.LayerNorm.bias"] = rnd(C, scale=0.1)
        p[b + "intermediate.dense.weight"] = rnd(FF, C)
        p[b + "intermediate.dense.bias"] = rnd(FF, scale=0.1)
        p[b + "output.dense.weight"] = rnd(C, FF)
        p[b + "output.dense.bias"] = rnd(C, scale=0.1)
        p[b + "output.LayerNorm.weight"] = 1 + rnd(C, scale=0.1)
        p[b + "output.LayerNorm.bias"] = rnd(C, scale=0.1)
    if with_lm_head:
        p["lm_head.dense.weight"] = rnd(C, C)
        p["lm_head.dense.bias"] = rnd(C, scale=0.1)
        p["lm_head.layer_norm.weight"] = 1 + rnd(C, scale=0.1)
        p["lm_head.layer_norm.bias"] = rnd(C, scale=0.1)
        p["lm_head.bias"] = rnd(cfg["vocab_size"], scale=0.1)
    if with_classifier:
        p["classifier.dense.weight"] = rnd(C, C)
        p["classifier.dense.bias"] = rnd(C, scale=0.1)
        p["classifier.out_proj.weight"] = rnd(num_labels, C)
        p["classifier.out_proj.bias"] = rnd(num_labels, scale=0.1)
    return p


def forward(cfg, p, prefix, ids, mask):
    C, NH, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    HS, pad = C // NH, cfg["pad_token_id"]
    B, T = ids.shape
    e = prefix + "embeddings."
    notpad = (ids != pad).long()
    pos = torch.cumsum(notpad, dim=1) * notpad + pad
    x = (p[e + "word_embeddings.weight"][ids] + p[e + "position_embeddings.weight"][pos]
         + p[e + "token_type_embeddings.weight"][torch.zeros_like(ids)])
    x = F.layer_norm(x, (C,), p[e + "LayerNorm.weight"], p[e + "LayerNorm.bias"], eps)
    hidden = [x]
    add_mask = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(cfg["num_hidden_layers"]):
        b = f"{prefix}encoder.layer.{i}."

        def lin(name, t):
            return F.linear(t, p[b + name + ".weight"], p[b + name + ".bias"])

        def heads(t):
            return t.view(B, T, NH, HS).permute(0, 2, 1, 3)

        q, k, v = (heads(lin(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HS) + add_mask
        ctx = (F.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        h1 = F.layer_norm(x + lin("attention.output.dense", ctx), (C,),
                          p[b + "attention.output.LayerNorm.weight"],
                          p[b + "attention.output.LayerNorm.bias"], eps)
        ff = lin("output.dense", F.gelu(lin("intermediate.dense", h1)))  # erf GELU
        x = F.layer_norm(h1 + ff, (C,), p[b + "output.LayerNorm.weight"],
                         p[b + "output.LayerNorm.bias"], eps)
        hidden.append(x)
    out = {"hidden_states": torch.stack(hidden)}
    if "lm_head.dense.weight" in p:
        h = F.gelu(F.linear(x, p["lm_head.dense.weight"], p["lm_head.dense.bias"]))
        h = F.layer_norm(h, (C,), p["lm_head.layer_norm.weight"], p["lm_head.layer_norm.bias"], eps)
        out["mlm_logits"] = F.linear(h, p[e + "word_embeddings.weight"], p["lm_head.bias"])
    if "classifier.dense.weight" in p:
        h = torch.tanh(F.linear(x[:, 0], p["classifier.dense.weight"], p["classifier.dense.bias"]))
        out["cls_logits"] = F.linear(h, p["classifier.out_proj.weight"], p["classifier.out_proj.bias"])
    return out


def make_config(vocab, C, L, NH, FF, max_pos=40):
    return {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
        "vocab_size": vocab, "hidden_size": C, "num_hidden_layers": L,
        "num_attention_heads": NH, "intermediate_size": FF, "hidden_act": "gelu",
        "max_position_embeddings": max_pos, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "position_embedding_type": "absolute", "torch_dtype": "float32",
    }


def batch(gen, vocab, lengths, T):
    """<s> random tokens </s>, padded with <pad>=1 to T."""
    ids = torch.ones(len(lengths), T, dtype=torch.int64)
    mask = torch.zeros(len(lengths), T, dtype=torch.int64)
    for r, n in enumerate(lengths):
        ids[r, 0] = 0
        ids[r, 1:n - 1] = torch.randint(4, vocab, (n - 2,), generator=gen)
        ids[r, n - 1] = 2
        mask[r, :n] = 1
    return ids, mask


FIXTURES = [
    # name, (vocab, C, L, NH, FF), prefix, lm_head, classifier, batches (lengths, T)
    ("tiny", (120, 32, 2, 4, 64), "roberta.", True, True, [([11, 7, 3], 11), ([17], 17)]),
    ("odd72", (150, 72, 2, 3, 100), "", False, False, [([13, 5], 13), ([1 + 1], 2)]),
]


def main(out_dir):
    for index, (name, (vocab, C, L, NH, FF), prefix, lm, cls, batches) in enumerate(FIXTURES):
        gen = torch.Generator().manual_seed(1000 + index)
        cfg = make_config(vocab, C, L, NH, FF)
        if cls:
            cfg["architectures"] = ["XLMRobertaForMaskedLM"]
        p = init_params(cfg, gen, prefix, lm, cls)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        write_safetensors(os.path.join(d, "model.safetensors"), p, {"format": "pt"})
        expected = {}
        for bi, (lengths, T) in enumerate(batches):
            ids, mask = batch(gen, vocab, lengths, T)
            with torch.no_grad():
                out = forward(cfg, p, prefix, ids, mask)
            expected[f"batch{bi}.input_ids"] = ids
            expected[f"batch{bi}.attention_mask"] = mask
            for k, v in out.items():
                expected[f"batch{bi}.{k}"] = v.float()
        meta = {"torch_version": torch.__version__, "generator": "tests/tools/xlmr_reference.py"}
        try:  # the Debian package version says more than torch's own "1.13.0a0"
            meta["debian_package"] = subprocess.run(
                ["dpkg-query", "-W", "-f=${Package} ${Version}", "python3-torch"],
                capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            pass
        write_safetensors(os.path.join(d, "expected.safetensors"), expected, meta)
        print(f"{d}: {sum(t.numel() for t in p.values())} parameters, torch {torch.__version__}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: xlmr_reference.py OUT_DIR")
    main(sys.argv[1])
