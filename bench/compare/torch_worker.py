"""PyTorch worker for bench/compare/compare.py: times the XLM-R module of xlmr.py in a process of
its own, so that each PyTorch dtype runs under the OpenMP wait policy it was started with
(libgomp reads OMP_WAIT_POLICY once, at load). Reads one JSON command per line on stdin, answers
one JSON line on stdout, as ort_worker.js does:
  {"cmd":"load","key":K,"dir":MODEL_DIR,"dtype":"f32"|"bf16"}  -> {"ok":true,"seconds":S}
  {"cmd":"run","key":K,"batch":B,"seq":T,"threads":N,"warmup":W,"runs":R}
                                                              -> {"ok":true,"ms":[R times]}
  {"cmd":"free","key":K} / {"cmd":"info"} / {"cmd":"quit"}
bf16 is model.to(torch.bfloat16): weights and activations bf16, no autocast. Only the forward
call is timed, under torch.inference_mode(); the ids are made beforehand.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xlmr import load_model, set_threads  # noqa: E402


def torch_ids(batch, seq, vocab, seed=1):
    """Random ids, <s> first and </s> last, every position real."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, seq), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids, torch.ones_like(ids)


def torch_times(model, ids, mask, threads, runs, warmup):
    if set_threads(threads) not in (None, threads):
        raise RuntimeError(f"OpenBLAS did not take {threads} threads")
    ms = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            model(ids, mask)
            if i >= warmup:
                ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def main():
    torch.set_num_interop_threads(1)
    models = {}
    for line in sys.stdin:
        c = json.loads(line)
        try:
            if c["cmd"] == "quit":
                break
            if c["cmd"] == "info":
                r = {"wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
            elif c["cmd"] == "load":
                t0 = time.perf_counter()
                m, cfg = load_model(c["dir"])
                if c["dtype"] == "bf16":
                    m = m.to(torch.bfloat16)
                elif c["dtype"] != "f32":
                    raise ValueError(f"dtype {c['dtype']}: f32 or bf16")
                models[c["key"]] = (m, cfg)
                r = {"seconds": time.perf_counter() - t0}
            elif c["cmd"] == "run":
                m, cfg = models[c["key"]]
                ids, mask = torch_ids(c["batch"], c["seq"], cfg["vocab_size"])
                r = {"ms": torch_times(m, ids, mask, c["threads"], c["runs"], c["warmup"])}
            elif c["cmd"] == "free":
                models.pop(c["key"], None)
                r = {}
            else:
                raise ValueError(f"unknown command {c['cmd']}")
            r["ok"] = True
        except Exception as e:  # reported to the driver, which stops the run
            r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
