"""A minimal XLM-R encoder in PyTorch, built from a kdnas model directory.

No `transformers` package is needed (none is installed): the safetensors file is read by hand
(8-byte little-endian header length, JSON header, raw little-endian bytes) and the module below
reproduces Hugging Face's XLMRobertaModel forward pass in eval mode:

  embeddings  word + position + token_type(0), LayerNorm; position ids as Hugging Face's
              create_position_ids_from_input_ids: cumsum over non-pad tokens + pad_token_id
              (real positions start at pad_token_id + 1, pads get pad_token_id)
  layers      post-LN: h = LN(h + attn(h)); h = LN(h + W2 gelu_erf(W1 h))
  attention   scores = QK^T / sqrt(head size) + (1 - mask) * min(f32), softmax, dropout off
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
              "I32": np.int32, "I8": np.int8, "U8": np.uint8}


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (BF16 tensors are widened to f32)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = info["data_offsets"]
        raw = data[base + b0:base + b1]
        shape = info["shape"]
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = u16.view(np.float32).reshape(shape)
        else:
            out[name] = np.frombuffer(raw, dtype=np.dtype(_NP_DTYPES[info["dtype"]]).newbyteorder("<")).reshape(shape).copy()
    return out


def set_threads(n):
    """torch intra-op threads = n, and the same for OpenBLAS: Debian's torch calls libblas.so.3
    for f32 GEMMs, and OpenBLAS's own pthread pool defaults to every core whatever
    torch.set_num_threads says. Returns OpenBLAS's thread count (None if not OpenBLAS)."""
    import ctypes
    torch.set_num_threads(n)
    try:
        blas = ctypes.CDLL("libblas.so.3")  # the instance torch already loaded (same soname)
        blas.openblas_set_num_threads(n)
        return blas.openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def read_config(model_dir):
    with open(f"{model_dir}/config.json") as f:
        return json.load(f)


class Layer(nn.Module):
    def __init__(self, c, heads, ffn, eps, dropout=0.0):
        super().__init__()
        self.heads, self.hs = heads, c // heads
        self.query, self.key, self.value = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.attn_out, self.attn_ln = nn.Linear(c, c), nn.LayerNorm(c, eps=eps)
        self.inter, self.out, self.out_ln = nn.Linear(c, ffn), nn.Linear(ffn, c), nn.LayerNorm(c, eps=eps)
        self.dropout = dropout

    def forward(self, h, bias):
        b, t, c = h.shape
        def split(x):
            return x.view(b, t, self.heads, self.hs).transpose(1, 2)  # [B, NH, T, HS]
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hs) + bias
        p = torch.softmax(s, dim=-1)
        p = F.dropout(p, self.dropout, self.training)
        a = torch.matmul(p, v).transpose(1, 2).reshape(b, t, c)
        h = self.attn_ln(h + F.dropout(self.attn_out(a), self.dropout, self.training))
        f = self.out(F.gelu(self.inter(h)))
        return self.out_ln(h + F.dropout(f, self.dropout, self.training))


class XLMR(nn.Module):
    def __init__(self, cfg, dropout=False):
        super().__init__()
        c, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-5)
        self.pad = cfg.get("pad_token_id", 1)
        p = cfg.get("hidden_dropout_prob", 0.1) if dropout else 0.0
        self.dropout = p
        self.word = nn.Embedding(cfg["vocab_size"], c, padding_idx=self.pad)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], c, padding_idx=self.pad)
        self.tok = nn.Embedding(cfg.get("type_vocab_size", 1), c)
        self.ln = nn.LayerNorm(c, eps=eps)
        self.layers = nn.ModuleList(
            Layer(c, cfg["num_attention_heads"], cfg["intermediate_size"], eps, p)
            for _ in range(cfg["num_hidden_layers"]))

    def init_random(self, std=0.02, seed=0):
        """Hugging Face's initialisation: N(0, std) weights, zero biases, unit LayerNorms."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                    if isinstance(m, nn.Linear):
                        m.bias.zero_()
                    elif m.padding_idx is not None:
                        m.weight[m.padding_idx].zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        return self

    def load_hf(self, tensors):
        """Copies Hugging Face XLMRobertaModel tensors ({name: numpy}) into the module."""
        t = {k[len("roberta."):] if k.startswith("roberta.") else k: v for k, v in tensors.items()}
        names = {"word.weight": "embeddings.word_embeddings.weight",
                 "pos.weight": "embeddings.position_embeddings.weight",
                 "tok.weight": "embeddings.token_type_embeddings.weight",
                 "ln.weight": "embeddings.LayerNorm.weight", "ln.bias": "embeddings.LayerNorm.bias"}
        sub = {"query": "attention.self.query", "key": "attention.self.key",
               "value": "attention.self.value", "attn_out": "attention.output.dense",
               "attn_ln": "attention.output.LayerNorm", "inter": "intermediate.dense",
               "out": "output.dense", "out_ln": "output.LayerNorm"}
        for i in range(len(self.layers)):
            for ours, hf in sub.items():
                for w in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{w}"] = f"encoder.layer.{i}.{hf}.{w}"
        state = {ours: torch.from_numpy(np.ascontiguousarray(t[hf]).astype(np.float32))
                 for ours, hf in names.items()}
        self.load_state_dict(state, strict=True)
        return self

    def forward(self, ids, mask, all_hidden=False):
        real = (ids != self.pad).to(torch.int64)
        pos = torch.cumsum(real, dim=1) * real + self.pad
        h = self.word(ids) + self.pos(pos) + self.tok(torch.zeros_like(ids))
        h = F.dropout(self.ln(h), self.dropout, self.training)
        dtype = h.dtype
        bias = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        hidden = [h]
        for layer in self.layers:
            h = layer(h, bias)
            hidden.append(h)
        return hidden if all_hidden else h


def load_model(model_dir):
    cfg = read_config(model_dir)
    m = XLMR(cfg).load_hf(read_safetensors(f"{model_dir}/model.safetensors"))
    return m.eval(), cfg


class LastHidden(nn.Module):
    """For ONNX export: (input_ids, attention_mask) -> last_hidden_state."""
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids, attention_mask)


def export_onnx(model, path, opset=14):
    ids = torch.tensor([[0, 581, 37, 2]], dtype=torch.int64)
    mask = torch.ones_like(ids)
    axes = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(LastHidden(model), (ids, mask), path, opset_version=opset,
                          input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "last_hidden_state": axes},
                          do_constant_folding=True)
