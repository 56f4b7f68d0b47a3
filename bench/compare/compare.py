"""kdnas vs PyTorch vs ONNX Runtime on the same random-weight XLM-R encoders (issue 8).

Run through bench/compare/run.sh (which installs the peers first). Steps:
  1. one model directory per shape (`kdnas init --seed S`); PyTorch reads its safetensors
     (xlmr.py), exports ONNX (opset 14) for ONNX Runtime, and an int8 graph is written from it
     (quantize.py);
  2. the last hidden state of kdnas (`kdnas encode`), PyTorch and ONNX Runtime on the same ids
     (two sequences, one padded) is compared over the real tokens: max abs diff per pair; f32
     pairs fail the run above --tol x max(1, max |h|);
  3. timing: for each shape x batch x threads, round-robin over the runtimes (the start rotates
     each round), each doing --warmup untimed and --runs timed forward passes per round; the
     median is the median of the per-round medians, the min the min of every timed run;
  4. optionally one distillation step (bench/distill/bench_distill_step.sh vs distill_step.py).
"""
import argparse
import base64
import copy
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from xlmr import export_onnx, load_model, read_safetensors, set_threads  # noqa: E402
from quantize import quantize_dynamic  # noqa: E402

POLICIES = ["default", "PASSIVE", "ACTIVE"]
SHAPES = {"xlmr-base": "tests/data/configs/xlmr-base.json",
          "6L-384H": "tests/data/configs/student-6L-384H.json",
          "4L-256H": "tests/data/configs/student-4L-256H.json"}


def log(*a):
    print(*a, flush=True)


def csv(s, f=str):
    return [f(x) for x in s.split(",") if x]


# ---- runtimes ---------------------------------------------------------------------------------

def policy_env(policy):
    """The environment for a process run under an OpenMP wait policy: 'default' leaves
    OMP_WAIT_POLICY unset (libgomp: spin a while, then sleep), PASSIVE / ACTIVE set it."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return env


class Worker:
    """A runtime in a process of its own, one JSON command a line (ort_worker.js, torch_worker.py)."""
    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, cwd=HERE, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

    def call(self, **c):
        self.p.stdin.write(json.dumps(c) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.p.args} died")
        r = json.loads(line)
        if not r.get("ok"):
            raise RuntimeError(f"worker {self.p.args}: {r.get('error')}")
        return r

    def close(self):
        try:
            self.p.stdin.write('{"cmd":"quit"}\n')
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def kdnas_env(a):
    env = policy_env(a.kdnas_wait_policy)
    env.pop("OMP_NUM_THREADS", None)
    return env


def kdnas_bench(a, model, batch, seq, threads, dtype, runs, warmup):
    cmd = [a.kdnas, "bench", "--model", model, "--batch", str(batch), "--seq", str(seq),
           "--threads", str(threads), "--dtype", dtype, "--runs", str(runs),
           "--warmup", str(warmup), "--json"]
    out = subprocess.run(cmd, env=kdnas_env(a), check=True, capture_output=True, text=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    for k in ("median_ms", "min_ms", "dtype", "threads", "batch", "seq"):
        if k not in j:
            raise RuntimeError(f"kdnas bench --json lacks '{k}': {out}")
    if j["dtype"] != dtype or j["threads"] != threads or j["batch"] != batch or j["seq"] != seq:
        raise RuntimeError(f"kdnas bench ran something else: {j}")
    return j


def torch_workers(a):
    """One torch_worker.py per distinct wait policy in --torch-wait-policy; {dtype: worker}."""
    by_policy, out = {}, {}
    for dt, pol in a.torch_wait_policy.items():
        if pol not in by_policy:
            by_policy[pol] = Worker([sys.executable, os.path.join(HERE, "torch_worker.py")],
                                    env=policy_env(pol))
        out[dt] = by_policy[pol]
    return out


# ---- preparation and check ----------------------------------------------------------------------

def prepare(a, name, config):
    d = os.path.join(a.work, f"{name}-seed{a.seed}")
    model = os.path.join(d, "model")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        os.makedirs(d, exist_ok=True)
        subprocess.run([a.kdnas, "init", "--config", os.path.join(ROOT, config), "--out", model,
                        "--seed", str(a.seed)], check=True, stdout=subprocess.DEVNULL)
    t0 = time.perf_counter()
    tm, cfg = load_model(model)
    log(f"  {name}: torch model loaded from {model} in {time.perf_counter() - t0:.1f} s")
    onnx_f32 = os.path.join(d, "model.onnx")
    onnx_i8 = os.path.join(d, "model.int8.onnx")
    if not os.path.exists(onnx_f32):
        t0 = time.perf_counter()
        export_onnx(tm, onnx_f32 + ".tmp", opset=a.opset)
        os.replace(onnx_f32 + ".tmp", onnx_f32)
        log(f"  {name}: exported {onnx_f32} (opset {a.opset}) in {time.perf_counter() - t0:.1f} s")
    if a.int8 and not os.path.exists(onnx_i8):
        n = quantize_dynamic(onnx_f32, onnx_i8 + ".tmp")
        os.replace(onnx_i8 + ".tmp", onnx_i8)
        log(f"  {name}: wrote {onnx_i8} ({n} MatMuls dynamically quantised to int8)")
    return {"dir": model, "torch": tm, "cfg": cfg, "onnx": onnx_f32, "onnx_int8": onnx_i8}


def check_ids(vocab, seed=7):
    rng = np.random.default_rng(seed)
    lens = [24, 11]
    rows = [[0] + list(rng.integers(3, vocab, n - 2)) + [2] for n in lens]
    t = max(lens)
    ids = np.ones((len(rows), t), np.int64)
    mask = np.zeros((len(rows), t), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return ids, mask


def check(a, name, m, ort, rows):
    """Last hidden states of the three runtimes on the same ids; returns False on a failure."""
    ids, mask = check_ids(m["cfg"]["vocab_size"])
    b, t = ids.shape
    out = os.path.join(a.work, f"check-{name}.safetensors")
    spec = ";".join(" ".join(str(x) for x in r[mask[i] == 1]) for i, r in enumerate(ids))
    states = {}
    kdnas_dtypes = ["f32"] + (["bf16"] if a.bf16 else []) + (["int8"] if a.int8 else [])
    for dtype in kdnas_dtypes:
        subprocess.run([a.kdnas, "encode", "--model", m["dir"], "--ids", spec, "--dtype", dtype,
                        "--out", out], check=True, stdout=subprocess.DEVNULL, env=kdnas_env(a))
        st = read_safetensors(out)
        if "hidden_states" not in st or "attention_mask" not in st:
            raise RuntimeError(f"kdnas encode wrote {sorted(st)}; expected hidden_states, attention_mask")
        hs = st["hidden_states"]  # [L+1, B, T, C]
        if hs.shape[:3] != (m["cfg"]["num_hidden_layers"] + 1, b, t) or not (st["attention_mask"] == mask).all():
            raise RuntimeError(f"kdnas encode: hidden_states {hs.shape}, mask differs from the ids'")
        states[("kdnas", dtype)] = hs[-1]
    set_threads(1)
    with torch.inference_mode():
        ti, tmk = torch.from_numpy(ids), torch.from_numpy(mask)
        states[("torch", "f32")] = m["torch"](ti, tmk).numpy()
        if a.bf16:
            states[("torch", "bf16")] = m["torch_bf16"](ti, tmk).float().numpy()
    for dtype, path in [("f32", m["onnx"])] + ([("int8", m["onnx_int8"])] if a.int8 else []):
        ort.call(cmd="load", key="check", path=path, threads=1)
        r = ort.call(cmd="infer", key="check", batch=b, seq=t, ids=ids.ravel().tolist(),
                     mask=mask.ravel().tolist())
        ort.call(cmd="free", key="check")
        states[("ort", dtype)] = np.frombuffer(base64.b64decode(r["data"]), np.float32).reshape(r["shape"])
    real = mask.astype(bool)
    ref = states[("torch", "f32")][real]
    scale = max(1.0, float(np.abs(ref).max()))
    ok = True
    log(f"  hidden-state check, {name}: last layer, {int(real.sum())} real tokens of ids [{b}, {t}], "
        f"max |h| {np.abs(ref).max():.3f}")
    f32 = [k for k in states if k[1] == "f32"]
    pairs = [(f32[i], f32[j]) for i in range(len(f32)) for j in range(i + 1, len(f32))]
    pairs += [(("torch", "f32"), k) for k in states if k[1] != "f32"]
    for ka, kb in pairs:
        d = float(np.abs(states[ka][real] - states[kb][real]).max())
        exact = ka[1] == "f32" and kb[1] == "f32"
        tol = a.tol * scale if exact else None
        bad = exact and not d <= tol
        ok &= not bad
        verdict = (f"tol {tol:.1e}: {'FAIL' if bad else 'ok'}" if exact
                   else "(reduced precision vs f32: reported, not checked)")
        log(f"    {ka[0]:>5} {ka[1]:>4} vs {kb[0]:>5} {kb[1]:>4}: max abs diff {d:.2e}  {verdict}")
        rows.append({"shape": name, "a": "/".join(ka), "b": "/".join(kb), "max_abs_diff": d,
                     "tolerance": tol, "ok": not bad})
    return ok


# ---- timing -------------------------------------------------------------------------------------

def time_config(a, name, m, ort, tw, batch, threads):
    seq = a.seq
    runtimes = [("kdnas", "f32"), ("torch", "f32"), ("ort", "f32")]
    if a.bf16:
        runtimes += [("kdnas", "bf16"), ("torch", "bf16")]
    if a.int8:
        runtimes += [("kdnas", "int8"), ("ort", "int8")]
    runtimes = [r for r in runtimes if r[0] in a.runtimes]
    keys = {}
    for rt, dt in runtimes:
        if rt == "ort":
            keys[dt] = f"{name}-{dt}-{threads}"
            ort.call(cmd="load", key=keys[dt], path=m["onnx"] if dt == "f32" else m["onnx_int8"],
                     threads=threads)
    res = {r: {"round_medians": [], "times": [], "min": float("inf")} for r in runtimes}
    for rnd in range(a.rounds):
        order = runtimes[rnd % len(runtimes):] + runtimes[:rnd % len(runtimes)]
        for rt, dt in order:
            r = res[(rt, dt)]
            if rt == "kdnas":
                j = kdnas_bench(a, m["dir"], batch, seq, threads, dt, a.runs, a.warmup)
                r["round_medians"].append(j["median_ms"])
                r["min"] = min(r["min"], j["min_ms"])
            else:
                if rt == "torch":
                    ms = tw[dt].call(cmd="run", key=f"{name}-{dt}", batch=batch, seq=seq,
                                     threads=threads, warmup=a.warmup, runs=a.runs)["ms"]
                else:
                    ms = ort.call(cmd="run", key=keys[dt], batch=batch, seq=seq, warmup=a.warmup,
                                  runs=a.runs, seed=1)["ms"]
                r["times"] += ms
                r["round_medians"].append(statistics.median(ms))
                r["min"] = min(r["min"], min(ms))
    for k in keys.values():
        ort.call(cmd="free", key=k)
    rows = []
    for (rt, dt), r in res.items():
        rows.append({"shape": name, "batch": batch, "seq": seq, "threads": threads, "runtime": rt,
                     "dtype": dt, "median_ms": statistics.median(r["round_medians"]),
                     "min_ms": r["min"], "round_medians_ms": r["round_medians"],
                     "rounds": a.rounds, "runs_per_round": a.runs, "warmup_per_round": a.warmup})
    kd = {row["dtype"]: row["median_ms"] for row in rows if row["runtime"] == "kdnas"}
    for row in rows:
        for dt in ("f32", "bf16", "int8"):
            row[f"kdnas_{dt}_over_this"] = kd[dt] / row["median_ms"] if dt in kd else None
    return rows


def table(rows):
    def f(x, fmt):
        return "–" if x is None else format(x, fmt)
    head = ("| runtime | dtype | median ms | min ms | kdnas f32 / this | kdnas bf16 / this | "
            "kdnas int8 / this |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['dtype']} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | "
                     f"{f(r['kdnas_f32_over_this'], '.2f')} | {f(r['kdnas_bf16_over_this'], '.2f')} | "
                     f"{f(r.get('kdnas_int8_over_this'), '.2f')} |")
    return lines


def summary(results, checks):
    """The wide tables of docs/perf.md (one row per batch x threads), ready to paste."""
    cols = [("kdnas", "f32"), ("kdnas", "bf16"), ("kdnas", "int8"), ("torch", "f32"), ("torch", "bf16"),
            ("ort", "f32"), ("ort", "int8")]
    ratios = [(("kdnas", "f32"), ("torch", "f32")), (("kdnas", "f32"), ("ort", "f32")),
              (("kdnas", "bf16"), ("torch", "bf16")), (("kdnas", "bf16"), ("ort", "f32")),
              (("kdnas", "int8"), ("ort", "int8"))]
    head = ("| batch | threads | kdnas f32 | kdnas bf16 | kdnas int8 | torch f32 | torch bf16 | ORT f32 | "
            "ORT int8 | kdnas f32 / torch f32 | kdnas f32 / ORT f32 | kdnas bf16 / torch bf16 | "
            "kdnas bf16 / ORT f32 | kdnas int8 / ORT int8 |")
    out = []
    for shape in dict.fromkeys(r["shape"] for r in results):
        out += [f"#### {shape} (median ms over rounds)", "", head, "|---:|---:|" + "---:|" * 12]
        rs = [r for r in results if r["shape"] == shape]
        for bt in dict.fromkeys((r["batch"], r["threads"]) for r in rs):
            med = {(r["runtime"], r["dtype"]): r["median_ms"] for r in rs if (r["batch"], r["threads"]) == bt}
            cells = [f"{med[c]:.2f}" if c in med else "–" for c in cols]
            cells += [f"{med[x] / med[y]:.2f}" if x in med and y in med else "–" for x, y in ratios]
            out.append(f"| {bt[0]} | {bt[1]} | " + " | ".join(cells) + " |")
        out.append("")
    if checks:
        pairs = list(dict.fromkeys((c["a"], c["b"]) for c in checks))
        out += ["#### hidden-state check (max abs diff, last layer, real tokens)", "",
                "| shape | " + " | ".join(f"{a} vs {b}" for a, b in pairs) + " |",
                "|---|" + "---:|" * len(pairs)]
        for shape in dict.fromkeys(c["shape"] for c in checks):
            d = {(c["a"], c["b"]): c["max_abs_diff"] for c in checks if c["shape"] == shape}
            out.append(f"| {shape} | " + " | ".join(f"{d[p]:.1e}" if p in d else "–" for p in pairs) + " |")
        out.append("")
    return out


# ---- distillation step --------------------------------------------------------------------------

def distill(a, teacher_dir):
    rows = {"kdnas": [], "torch": []}
    for rnd in range(a.distill_rounds):
        for who in (["kdnas", "torch"] if rnd % 2 == 0 else ["torch", "kdnas"]):
            if who == "kdnas":
                env = dict(os.environ, TEACHER_DTYPE=a.distill_teacher_dtype)  # the script sets PASSIVE
                out = subprocess.run(["bash", os.path.join(ROOT, "bench/distill/bench_distill_step.sh"),
                                      a.kdnas, str(a.distill_threads), str(a.distill_steps)],
                                     env=env, check=True, capture_output=True, text=True).stdout
                mt = re.search(r"median (\d+) ms, min (\d+) ms", out)
                if not mt:
                    raise RuntimeError(f"bench_distill_step.sh printed no median: {out}")
                rows["kdnas"].append({"median_ms": float(mt.group(1)), "min_ms": float(mt.group(2))})
            else:
                out = subprocess.run([sys.executable, os.path.join(HERE, "distill_step.py"),
                                      "--teacher", teacher_dir, "--threads", str(a.distill_threads),
                                      "--steps", str(a.distill_steps),
                                      "--teacher-dtype", a.distill_teacher_dtype],
                                     env=policy_env(a.torch_wait_policy["f32"]), check=True,
                                     capture_output=True, text=True).stdout
                rows["torch"].append(json.loads(out.strip().splitlines()[-1]))
            extra = rows[who][-1].get("phase_median_ms")
            extra = ("  (" + ", ".join(f"{k} {v:.0f}" for k, v in extra.items()) + " ms)") if extra else ""
            log(f"  distill round {rnd + 1}, {who}: median {rows[who][-1]['median_ms']:.0f} ms{extra}")
    res = {who: {"median_ms": statistics.median(r["median_ms"] for r in v),
                 "min_ms": min(r["min_ms"] for r in v), "rounds": v} for who, v in rows.items()}
    res["kdnas_over_torch"] = res["kdnas"]["median_ms"] / res["torch"]["median_ms"]
    res.update(threads=a.distill_threads, steps=a.distill_steps, warm=2,
               teacher_dtype=a.distill_teacher_dtype, batch=8, seq=128, arch="6,384,12,1536")
    return res


# ---- main ---------------------------------------------------------------------------------------

def versions(a, ort):
    v = {"torch": torch.__version__, "numpy": np.__version__,
         "torch_mkldnn_available": torch.backends.mkldnn.is_available(),
         "torch_num_interop_threads": torch.get_num_interop_threads(),
         "onnxruntime_node": ort.call(cmd="info")["versions"], "python": platform.python_version()}
    try:
        import onnx
        v["onnx"] = onnx.__version__
    except ImportError:
        pass
    v["torch_mkldnn"] = next((l.strip() for l in torch.__config__.show().splitlines()
                              if "MKL-DNN" in l or "oneDNN" in l), None)
    v["torch_cpu_capability"] = next((l.split(":")[-1].strip() for l in torch.__config__.show().splitlines()
                                      if "CPU capability" in l), None)
    try:
        v["blas"] = os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    except OSError:
        pass
    try:
        v["kdnas_onednn"] = next((l.split("=>")[1].split()[0] for l in subprocess.run(
            ["ldd", a.kdnas], capture_output=True, text=True).stdout.splitlines() if "dnnl" in l), None)
        if v["kdnas_onednn"]:
            v["kdnas_onednn"] = os.path.realpath(v["kdnas_onednn"])
    except Exception:
        pass
    try:
        v["cpu"] = next(l.split(":", 1)[1].strip() for l in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name"))
    except Exception:
        v["cpu"] = platform.processor()
    v["cores"] = os.cpu_count()
    # Which GEMM implementation torch uses per dtype (oneDNN prints one line per primitive run;
    # none for f32 means Linear went to libblas.so.3).
    probe = ("import torch\nfor dt in (torch.float32, torch.bfloat16):\n"
             "  l = torch.nn.Linear(64, 64).to(dt)\n"
             "  with torch.inference_mode(): l(torch.randn(8, 64).to(dt))\n  print('dtype', dt, flush=True)\n")
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")).stdout
        impl, seen = {}, []
        for l in out.splitlines():
            if l.startswith("onednn_verbose,exec") or l.startswith("dnnl_verbose,exec"):
                seen.append(l.split(",")[4])
            elif l.startswith("dtype"):
                impl[l.split()[1]] = ",".join(sorted(set(seen))) or "libblas.so.3 (no oneDNN primitive)"
                seen = []
        v["torch_linear_impl"] = impl
    except Exception as e:
        v["torch_linear_impl"] = str(e)
    v["loadavg_start"] = os.getloadavg()
    v["omp_wait_policy"] = {"kdnas": a.kdnas_wait_policy,
                            **{f"torch {dt}": p for dt, p in a.torch_wait_policy.items()},
                            "torch distillation step": a.torch_wait_policy["f32"],
                            "kdnas distillation step": "PASSIVE"}
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="4L-256H only, batch 1, 1 thread, 2 rounds of 3 runs, no distillation step")
    ap.add_argument("--shapes", default="xlmr-base,6L-384H,4L-256H",
                    help=f"comma-separated among {', '.join(SHAPES)}")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--runs", type=int, default=None,
                    help="timed runs per runtime per round (default 10 at batch 1, 3 at batch >= 8)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed runs per runtime per round (default 2 at batch 1, 1 at batch >= 8)")
    ap.add_argument("--runtimes", default="kdnas,torch,ort")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--no-int8", dest="int8", action="store_false")
    ap.add_argument("--no-check", dest="check", action="store_false")
    ap.add_argument("--tol", type=float, default=1e-3,
                    help="f32 pairs fail above tol x max(1, max |h|) (default 1e-3)")
    ap.add_argument("--distill", dest="distill", action="store_true", default=None,
                    help="time the distillation step (default: on, off with --quick)")
    ap.add_argument("--no-distill", dest="distill", action="store_false")
    ap.add_argument("--distill-threads", type=int, default=2)
    ap.add_argument("--distill-steps", type=int, default=12, help="steps per run; the first 2 are warm-up")
    ap.add_argument("--distill-rounds", type=int, default=2)
    ap.add_argument("--distill-teacher-dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--kdnas-wait-policy", default="default", choices=POLICIES,
                    help="OpenMP wait policy of the kdnas processes (default: libgomp's default, "
                         "spin then sleep)")
    ap.add_argument("--torch-wait-policy", default="f32=PASSIVE,bf16=default",
                    help="OpenMP wait policy per PyTorch dtype, each dtype timed in a worker process "
                         "started with it (default f32=PASSIVE,bf16=default: each one's faster "
                         "setting on the development machine, docs/perf.md)")
    ap.add_argument("--kdnas", default=os.path.join(ROOT, "build/apps/kdnas"))
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "kdnas-compare"),
                    help="model directories and ONNX files, kept between runs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--out", help="all numbers as JSON")
    ap.add_argument("--md", help="markdown tables")
    a = ap.parse_args()
    if a.quick:
        a.shapes, a.batches, a.threads, a.rounds = "4L-256H", "1", "1", 2
        a.runs = a.runs or 3
        if a.distill is None:
            a.distill = False
    if a.distill is None:
        a.distill = True
    a.runtimes = csv(a.runtimes)
    try:
        tp = dict(x.split("=", 1) for x in csv(a.torch_wait_policy))
    except ValueError:
        ap.error(f"--torch-wait-policy {a.torch_wait_policy}: expected f32=P,bf16=P")
    if set(tp) != {"f32", "bf16"} or not set(tp.values()) <= set(POLICIES):
        ap.error(f"--torch-wait-policy {a.torch_wait_policy}: f32=P,bf16=P with P among "
                 f"{', '.join(POLICIES)}")
    a.torch_wait_policy = tp
    shapes = csv(a.shapes)
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s}; known: {', '.join(SHAPES)}")
    if not os.access(a.kdnas, os.X_OK):
        ap.error(f"no kdnas binary at {a.kdnas} (build first)")
    os.makedirs(a.work, exist_ok=True)

    torch.set_num_interop_threads(1)
    ort = Worker(["node", os.path.join(HERE, "ort_worker.js")])
    tw = torch_workers(a) if "torch" in a.runtimes else {}
    report = {"versions": versions(a, ort), "options": {k: v for k, v in vars(a).items()},
              "checks": [], "results": []}
    v = report["versions"]
    log(f"machine: {v['cpu']}, {v['cores']} cores, load average {v['loadavg_start'][0]:.2f}")
    log(f"torch {v['torch']} ({v['torch_mkldnn']}; mkldnn available: {v['torch_mkldnn_available']}; "
        f"ATen CPU capability {v['torch_cpu_capability']}), libblas.so.3 -> {v.get('blas')}")
    log("OpenMP wait policy: " + ", ".join(f"{k} {p}" for k, p in v["omp_wait_policy"].items())
        + " ('default': OMP_WAIT_POLICY unset, libgomp spins a while, then sleeps); "
        "ONNX Runtime: its own thread pool (default spinning)")
    log(f"onnxruntime-node {v['onnxruntime_node']}, onnx {v.get('onnx')}, kdnas oneDNN {v.get('kdnas_onednn')}")
    log("torch bf16: model.to(torch.bfloat16) (weights and activations bf16; no autocast); "
        f"torch Linear runs on: {v['torch_linear_impl']}")
    md = [f"Machine: {v['cpu']}, {v['cores']} cores. torch {v['torch']}, onnxruntime-node "
          f"{v['onnxruntime_node'].get('node')}, kdnas oneDNN {v.get('kdnas_onednn')}.", ""]
    failed = False
    try:
        for name in shapes:
            log(f"\n== {name} ({SHAPES[name]})")
            m = prepare(a, name, SHAPES[name])
            if a.bf16:
                m["torch_bf16"] = copy.deepcopy(m["torch"]).to(torch.bfloat16)
            if a.check and not check(a, name, m, ort, report["checks"]):
                failed = True
            for dt, w in tw.items():
                if dt == "f32" or a.bf16:
                    w.call(cmd="load", key=f"{name}-{dt}", dir=m["dir"], dtype=dt)
            for batch in csv(a.batches, int):
                for threads in csv(a.threads, int):
                    runs = a.runs or (10 if batch < 8 else 3)
                    warm = a.warmup if a.warmup is not None else (2 if batch < 8 else 1)
                    a_runs = argparse.Namespace(**{**vars(a), "runs": runs, "warmup": warm})
                    log(f"\n{name}, batch {batch} x {a.seq} tokens, {threads} thread(s): "
                        f"{a.rounds} rounds x {runs} runs (+{warm} warm-up) per runtime")
                    rows = time_config(a_runs, name, m, ort, tw, batch, threads)
                    report["results"] += rows
                    lines = table(rows)
                    log("\n".join(lines))
                    md += [f"### {name}, batch {batch} × {a.seq}, {threads} thread(s)", ""] + lines + [""]
            for dt, w in tw.items():
                w.call(cmd="free", key=f"{name}-{dt}")
            del m
        if a.distill:
            log("\n== distillation step (6L/384H student, XLM-R Base teacher, batch 8 x 128)")
            tdir = os.path.join(a.work, f"xlmr-base-seed{a.seed}", "model")
            if not os.path.exists(os.path.join(tdir, "model.safetensors")):
                subprocess.run([a.kdnas, "init", "--config", os.path.join(ROOT, SHAPES["xlmr-base"]),
                                "--out", tdir, "--seed", str(a.seed)], check=True, stdout=subprocess.DEVNULL)
            d = distill(a, tdir)
            report["distill"] = d
            lines = ["| runtime | step median ms | min ms |", "|---|---:|---:|",
                     f"| kdnas | {d['kdnas']['median_ms']:.0f} | {d['kdnas']['min_ms']:.0f} |",
                     f"| torch | {d['torch']['median_ms']:.0f} | {d['torch']['min_ms']:.0f} |",
                     f"| kdnas / torch | {d['kdnas_over_torch']:.2f} | |"]
            log("\n".join(lines))
            md += [f"### distillation step, {a.distill_threads} thread(s), teacher {a.distill_teacher_dtype}", ""] + lines + [""]
    finally:
        ort.close()
        for w in set(tw.values()):
            w.close()
    report["versions"]["loadavg_end"] = os.getloadavg()
    md += ["### summary", ""] + summary(report["results"], report["checks"])
    report["failed_check"] = failed
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
        log(f"\nwrote {a.out}")
    if a.md:
        with open(a.md, "w") as f:
            f.write("\n".join(md) + "\n")
        log(f"wrote {a.md}")
    if failed:
        log("\nFAILED: a hidden-state difference is above the tolerance (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
