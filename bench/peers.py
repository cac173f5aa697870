#!/usr/bin/env python3
"""What a researcher would otherwise run, timed for scripts/bench (prints one JSON object).

- forward: a plain PyTorch GPT-2 in the style of nanoGPT (the same pre-LayerNorm blocks, fused
  q|k|v, tanh GELU, tied lm_head, logits at every position), its weights read from the same
  model.safetensors llmscope loads, on Debian's python3-torch (the same libtorch release);
- sgemm: the machine's float32 matrix-multiply roofline, a large square torch.mm timed in turn
  with the forward passes;
- logit: a statsmodels Logit fit (y ~ 1 + x_n) per neuron, the course's loop;
- ttest: scipy.stats.ttest_ind per neuron (Welch and Student), the course's loop.

usage: peers.py [--parts forward,stats] [--model DIR] [--batch B] [--tokens T] [--iterations N]
                [--threads K[,K...]] [--roofline N] [--samples S] [--logit-neurons N]
                [--ttest-neurons N] [--repeats R]
"""
import argparse
import json
import math
import struct
import time

import numpy as np


def read_safetensors(path):
    """name -> float32 numpy array; the format is an 8-byte header length, JSON, then data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = array.astype(np.float32)
    return out


def fastest_in_turn(fn, iterations, between=None, rounds=5):
    """The fastest of rounds x iterations calls of fn, as `llmscope bench` times its cases; with
    `between`, the fastest of its calls too, one after each pass (at most 3 a round), so that both
    see the machine at the same moments."""
    fn()  # warm-up
    if between:
        between()
    best, best_between = math.inf, math.inf
    every = max(1, iterations // 3)
    for _ in range(rounds):
        for i in range(iterations):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
            if between and (i + 1) % every == 0:
                start = time.perf_counter()
                between()
                best_between = min(best_between, time.perf_counter() - start)
    return best, best_between


def forward_peer(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    config = json.load(open(f"{args.model}/config.json"))
    w = {k: torch.from_numpy(v.copy()) for k, v in
         read_safetensors(f"{args.model}/model.safetensors").items()}
    d, n_layer = config["n_embd"], config["n_layer"]
    n_head = config.get("n_head", max(1, d // 64))
    eps = config.get("layer_norm_epsilon", 1e-5)

    def conv1d(prefix, d_in, d_out):  # HF's Conv1D stores [in, out]; nn.Linear wants [out, in]
        layer = nn.Linear(d_in, d_out)
        layer.weight.data = w[prefix + ".weight"].t().contiguous()
        layer.bias.data = w[prefix + ".bias"]
        return layer

    def layer_norm(prefix):
        norm = nn.LayerNorm(d, eps=eps)
        norm.weight.data, norm.bias.data = w[prefix + ".weight"], w[prefix + ".bias"]
        return norm

    class Block(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.ln_1, self.ln_2 = layer_norm(p + "ln_1"), layer_norm(p + "ln_2")
            self.c_attn = conv1d(p + "attn.c_attn", d, 3 * d)
            self.attn_proj = conv1d(p + "attn.c_proj", d, d)
            self.c_fc = conv1d(p + "mlp.c_fc", d, 4 * d)
            self.mlp_proj = conv1d(p + "mlp.c_proj", 4 * d, d)

        def forward(self, x, mask):
            B, T, C = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = F.softmax(att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            x = x + self.attn_proj(y)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = w["transformer.wte.weight"], w["transformer.wpe.weight"]
            self.blocks = nn.ModuleList(Block(f"transformer.h.{i}.") for i in range(n_layer))
            self.ln_f = layer_norm("transformer.ln_f")
            n = self.wpe.size(0)
            self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

        def forward(self, ids):
            x = self.wte[ids] + self.wpe[torch.arange(ids.size(1))]
            for block in self.blocks:
                x = block(x, self.mask)
            return self.ln_f(x) @ self.wte.t()  # tied lm_head, every position

    model = GPT().eval()
    ids = torch.randint(config["vocab_size"], (args.batch, args.tokens))
    # The machine's sgemm roofline, torch.mm of two n x n float32 matrices, timed in turn with
    # the passes.
    n = args.roofline
    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch.no_grad():
        seconds, mm_seconds = fastest_in_turn(lambda: model(ids), args.iterations,
                                              lambda: torch.mm(a, b))
    return {"ms_per_pass": seconds * 1e3, "tokens_per_s": args.batch * args.tokens / seconds,
            "torch": torch.__version__,
            "sgemm": {"n": n, "gflops": 2 * n ** 3 / mm_seconds / 1e9}}


def activations(neurons, samples, seed=0):
    """The stats bench's data: float32, class 1 shifted by a per-neuron amount."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(samples // 2), np.ones(samples - samples // 2)]
    shift = np.linspace(-1.0, 1.0, neurons)
    x = (rng.standard_normal((samples, neurons)) + y[:, None] * shift).astype(np.float32)
    return x, y


def fastest(repeats, fn):
    """The fastest of `repeats` timed calls of fn, as llmscope_stats_bench times its cases."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def logit_peer(args):
    import statsmodels
    import statsmodels.api as sm
    x, y = activations(args.logit_neurons, args.samples)

    def loop():
        for n in range(x.shape[1]):
            sm.Logit(y, sm.add_constant(x[:, n].astype(np.float64))).fit(disp=0)

    seconds = fastest(args.repeats, loop)
    return {"ms_per_neuron": seconds * 1e3 / x.shape[1], "neurons": x.shape[1],
            "statsmodels": statsmodels.__version__}


def ttest_peer(args):
    import scipy
    from scipy import stats
    x, _ = activations(args.ttest_neurons, args.samples)
    a, b = x[: args.samples // 2], x[args.samples // 2:]
    out = {"neurons": x.shape[1], "scipy": scipy.__version__}
    for name, equal_var in (("welch", False), ("student", True)):
        def loop():
            for n in range(x.shape[1]):
                stats.ttest_ind(a[:, n], b[:, n], equal_var=equal_var)

        out[name + "_ms_per_neuron"] = fastest(args.repeats, loop) * 1e3 / x.shape[1]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="forward,stats",
                   help="what to time: forward (the GPT-2 pass and the roofline), stats (the "
                        "logit and t-test loops), or both")
    p.add_argument("--model", help="the model folder (for the forward part)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--threads", default="0",
                   help="torch intra-op threads for the forward pass, a comma-separated list to "
                        "time each and keep the fastest (0: its default)")
    p.add_argument("--roofline", type=int, default=2048,
                   help="size of the square torch.mm timing the sgemm roofline")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--logit-neurons", type=int, default=200)
    p.add_argument("--ttest-neurons", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs of each statistics loop, the fastest kept")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"forward", "stats"}:
        p.error(f"unknown --parts {sorted(parts - {'forward', 'stats'})}: expected forward, stats")
    if "forward" in parts and not args.model:
        p.error("the forward part needs --model")
    out = {}
    if "forward" in parts:
        import torch
        by_threads = {}
        for threads in (int(t) for t in args.threads.split(",")):
            if threads > 0:
                torch.set_num_threads(threads)
            by_threads[torch.get_num_threads()] = forward_peer(args)
        best = max(by_threads, key=lambda t: by_threads[t]["tokens_per_s"])
        out.update({
            "threads": best, "forward": by_threads[best],
            "forward_by_threads": {str(t): f["tokens_per_s"] for t, f in by_threads.items()},
            "sgemm": max((f["sgemm"] for f in by_threads.values()), key=lambda r: r["gflops"])})
    if "stats" in parts:
        out.update({"logit": logit_peer(args), "ttest": ttest_peer(args)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
