"""PyTorch's side of the distillation-step benchmark: the same step bench/distill/
bench_distill_step.sh times in kdnas (`kdnas distill --loss hs --map uniform+last`).

  student   6 layers / 384 hidden / 12 heads / FFN 1536, vocabulary 250 002, random init
            (N(0, 0.02)), dropout 0.1 on (training mode), as kdnas distill trains it
  teacher   XLM-R Base shape (a kdnas model directory, or random), eval mode, torch.no_grad()
  loss      hidden-state MSE (distill/losses.cpp): for student layer i the target is
            concat(H_T[u(i)], H_T[l(i)]) with u(i) = min(floor(i * L_T / L_S), L_T - 1) and
            l(i) = L_T - L_S + i (0-based, embeddings excluded); a learned Linear(C_S, 2 C_T)
            (N(0, 0.02), zero bias) per student layer maps the student's state; MSE is the mean
            over real tokens and channels; the loss is the mean over student layers
  update    AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01 off biases and
            LayerNorm) over every student parameter (the 250 002 x 384 embedding table included)
            and the projections, after clipping the global gradient norm at 1; linear warmup
            over 10 % of the steps then linear decay (LambdaLR), as kdnas distill's defaults
  batch     8 x 128 random ids, every sequence full (<s> ... </s>, mask all ones)

Prints one JSON line: per-step milliseconds (warm-up steps left out), median, min, tokens/s.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, __import__("os").path.dirname(__file__))
from xlmr import XLMR, load_model, read_config, set_threads  # noqa: E402


def layer_map(ls, lt):
    u = [min(i * lt // ls, lt - 1) for i in range(ls)]
    last = [min(max(0, lt - ls + i), lt - 1) for i in range(ls)]
    return list(zip(u, last))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", help="kdnas model directory (default: random XLM-R Base shape)")
    ap.add_argument("--teacher-config", default=None)
    ap.add_argument("--teacher-dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--arch", default="6,384,12,1536")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.set_num_interop_threads(1)
    set_threads(a.threads)  # torch and OpenBLAS
    torch.manual_seed(a.seed)

    if a.teacher:
        teacher, tcfg = load_model(a.teacher)
    else:
        tcfg = read_config(a.teacher_config) if a.teacher_config else None
        teacher = XLMR(tcfg).init_random(seed=a.seed).eval()
    if a.teacher_dtype == "bf16":
        teacher = teacher.to(torch.bfloat16)
    for p in teacher.parameters():
        p.requires_grad_(False)

    L, H, A, F = (int(x) for x in a.arch.split(","))
    scfg = dict(tcfg, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=F)
    student = XLMR(scfg, dropout=True).init_random(seed=a.seed + 1).train()
    lt, ct = tcfg["num_hidden_layers"], tcfg["hidden_size"]
    lmap = layer_map(L, lt)
    proj = nn.ModuleList(nn.Linear(H, len(lmap[0]) * ct) for _ in range(L))
    with torch.no_grad():
        for p in proj:
            p.weight.normal_(0, 0.02)
            p.bias.zero_()

    decay, no_decay = [], []
    for mod in (student, proj):
        for name, p in mod.named_parameters():
            (no_decay if name.endswith("bias") or "ln" in name.split(".")[-2] else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    warmup = max(1, a.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (a.steps - s) / (a.steps - warmup)))
    params = decay + no_decay

    g = torch.Generator().manual_seed(a.seed)
    ms, phases = [], []
    for step in range(a.steps):
        ids = torch.randint(3, tcfg["vocab_size"], (a.batch, a.seq), generator=g)
        ids[:, 0], ids[:, -1] = tcfg.get("bos_token_id", 0), tcfg.get("eos_token_id", 2)
        mask = torch.ones_like(ids)
        t0 = time.perf_counter()
        with torch.no_grad():
            th = [h.float() for h in teacher(ids, mask, all_hidden=True)]
        t1 = time.perf_counter()
        sh = student(ids, mask, all_hidden=True)
        loss = 0.0
        for i, targets in enumerate(lmap):
            target = torch.cat([th[t + 1] for t in targets], dim=-1)
            loss = loss + torch.mean((proj[i](sh[i + 1]) - target) ** 2)
        loss = loss / L
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        t4 = time.perf_counter()
        ms.append((t4 - t0) * 1e3)
        phases.append([(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3])
        if not torch.isfinite(loss):
            raise SystemExit(f"distill_step: non-finite loss at step {step}")
    timed = ms[a.warm:]
    print(json.dumps({"runtime": "torch", "threads": a.threads, "teacher_dtype": a.teacher_dtype,
                      "batch": a.batch, "seq": a.seq, "arch": a.arch, "steps_timed": len(timed),
                      "ms": [round(x, 2) for x in timed], "median_ms": statistics.median(timed),
                      "min_ms": min(timed),
                      "phase_median_ms": {k: statistics.median(p[i] for p in phases[a.warm:])
                                          for i, k in enumerate(["teacher_forward", "student_forward_loss",
                                                                 "backward", "clip_adamw"])},
                      "tokens_per_s": a.batch * a.seq * len(timed) / (sum(timed) / 1e3),
                      "last_loss": float(loss)}))


if __name__ == "__main__":
    main()
