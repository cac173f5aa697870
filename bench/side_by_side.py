#!/usr/bin/env python3
"""scripts/bench's table: llmscope's JSON (llmscope bench, llmscope_stats_bench) beside the
peers' (bench/peers.py), as Markdown; with --write, also into docs/performance.md between the
side-by-side markers.

usage: side_by_side.py DIR --command "scripts/bench ..." [--write docs/performance.md]
"""
import argparse
import glob
import json
import os
import platform
import re
import subprocess

BEGIN, END = "<!-- side-by-side: begin -->", "<!-- side-by-side: end -->"


def flops_per_pass(config, batch, tokens):
    """Multiply-adds x 2 of a GPT-2 pass: per layer q|k|v, the projection and the MLP
    (24 B T d^2), scores and values (4 B T^2 d), and the tied head at every position."""
    d, layers, vocab = config["n_embd"], config["n_layer"], config["vocab_size"]
    bt = batch * tokens
    return layers * (24 * bt * d * d + 4 * batch * tokens * tokens * d) + 2 * bt * d * vocab


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fastest_of(runs, key=""):
    """The first run, with every "...ms_per_neuron" (at any depth) the least over all runs."""
    if isinstance(runs[0], dict):
        return {k: fastest_of([run[k] for run in runs], k) for k in runs[0]}
    return min(runs) if key.endswith("ms_per_neuron") else runs[0]


def table(dir_, command):
    ls = json.load(open(f"{dir_}/llmscope.json"))
    peers = json.load(open(f"{dir_}/peers.json"))
    # The statistics' rounds, taken in turn with the peers': each side's fastest of every round.
    rounds = sorted(glob.glob(f"{dir_}/stats-*.json"))
    peer_rounds = sorted(glob.glob(f"{dir_}/peers-stats-*.json"))
    if not rounds or len(rounds) != len(peer_rounds):
        raise SystemExit(f"{dir_}: expected stats-N.json and peers-stats-N.json for each round")
    st = fastest_of([json.load(open(f)) for f in rounds])
    stat_peers = fastest_of([json.load(open(f)) for f in peer_rounds])
    peers.update(logit=stat_peers["logit"], ttest=stat_peers["ttest"])
    config = json.load(open(f"{ls['model']}/config.json"))
    cases = {c["name"]: c for c in ls["cases"]}
    plain = cases["no hooks (C++)"]
    native = next(c for n, c in cases.items() if n.endswith("native observer hooks"))
    lua_plain = cases["no hooks (driven from Lua)"]
    lua = next(c for n, c in cases.items() if n.endswith("Lua observer hooks"))
    together = next((c for n, c in cases.items() if "batch_invariant = false" in n), None)
    flops = flops_per_pass(config, ls["batch"], ls["tokens"])
    # Each side's share is of the roofline timed in turn with its own passes: llmscope's the
    # faster of the BLAS and llmscope's kernel, the peer's torch.mm (OpenBLAS).
    roof = ls["sgemm_roofline"]["gflops"]
    peer_roof = peers["sgemm"]["gflops"]
    roof_text = " and ".join(f"{p['name']} {p['gflops']:.0f}"
                             for p in ls["sgemm_roofline"]["products"])

    def gflops(ms):
        return flops / (ms * 1e-3) / 1e9

    peer = peers["forward"]
    rows = [
        "| case | llmscope | peer | llmscope / peer |",
        "|---|---|---|---|",
        f"| GPT-2 forward, {config['n_layer']} x {config['n_embd']}, batch {ls['batch']} x "
        f"{ls['tokens']}, fp32 (tokens/s) | {plain['tokens_per_s']:.0f} | "
        f"{peer['tokens_per_s']:.0f} (PyTorch {peer['torch']}, nanoGPT-style) | "
        f"**{plain['tokens_per_s'] / peer['tokens_per_s']:.2f}x** |",
        f"| the same, share of the sgemm roofline (float32 {ls['sgemm_roofline']['n']}^3 timed "
        f"in turn with each side's passes; llmscope's process: {roof_text} GFLOP/s; the peer's: "
        f"torch.mm {peer_roof:.0f} GFLOP/s) | "
        f"{100 * gflops(plain['ms_per_pass']) / roof:.0f}% ({gflops(plain['ms_per_pass']):.0f} "
        f"of {roof:.0f} GFLOP/s) | "
        f"{100 * gflops(peer['ms_per_pass']) / peer_roof:.0f}% | |",
        # The strictest reading: the fastest 2048^3 product either process timed, minutes apart.
        f"| the same, share of the fastest of those rooflines ({max(roof, peer_roof):.0f} "
        f"GFLOP/s) | {100 * gflops(plain['ms_per_pass']) / max(roof, peer_roof):.0f}% | "
        f"{100 * gflops(peer['ms_per_pass']) / max(roof, peer_roof):.0f}% | |",
        *([f"| the same with the prompts multiplied together (`batch_invariant = false`; "
            f"rows then depend on the batch where the BLAS does; the same products where "
            f"llmscope's kernel makes them) | "
            f"{together['tokens_per_s']:.0f} | | "
            f"{together['tokens_per_s'] / peer['tokens_per_s']:.2f}x |"] if together else []),
        f"| {ls['hooked_sites']} native observer hooks (cost over no hooks: the median of "
        f"paired passes' ratios) | {100 * native['cost_over_baseline']:+.1f}% | | |",
        f"| {ls['hooked_sites']} Lua observer hooks (cost over the same pass from Lua, likewise) | "
        f"{100 * lua['cost_over_baseline']:+.1f}% | | |",
        f"| logistic regression per neuron, {st['samples']} samples (ms/neuron) | "
        f"{st['logit_ms_per_neuron']:.4f} ({st['neurons']} neurons batched) | "
        f"{peers['logit']['ms_per_neuron']:.3f} (statsmodels {peers['logit']['statsmodels']} "
        f"Logit loop) | **{peers['logit']['ms_per_neuron'] / st['logit_ms_per_neuron']:.0f}x** |",
    ]
    for name in ("welch", "student"):
        ours, theirs = st[f"{name}_ms_per_neuron"], peers["ttest"][f"{name}_ms_per_neuron"]
        rows.append(
            f"| {name.capitalize()} t-test per neuron, {st['samples'] // 2} + "
            f"{st['samples'] - st['samples'] // 2} samples (ms/neuron) | {ours:.5f} | "
            f"{theirs:.4f} (scipy {peers['ttest']['scipy']} ttest_ind loop) | "
            f"**{theirs / ours:.0f}x** |")
    tried = peers.get("forward_by_threads", {})
    tried_text = ", ".join(f"{t} thread{'s' if t != '1' else ''}: {v:.0f} tokens/s"
                           for t, v in tried.items())
    products = ls.get("float32_products", "the BLAS")
    split = ("split over them by llmscope's AVX2 kernel" if products != "the BLAS" else
             "split over them with OpenBLAS held to one thread")
    threads = (f"Threads (ATen intra-op): llmscope {ls['threads']} for the forward pass (its "
               f"products {split}), {st['threads']} for "
               f"the statistics, against single-threaded loops; the PyTorch peer at its faster "
               f"setting, {peers['threads']} ({tried_text}; OpenBLAS runs its products on every "
               f"core either way).")
    return "\n".join([
        f"Command: `{command}`, on {cpu_name()} ({subprocess.getoutput('nproc')} cores). "
        + threads + f" Each forward figure is the fastest of {ls['rounds'] * ls['iterations']} "
        "passes, timed in turn with the other cases' passes and the roofline's products, both "
        "sides on the same "
        "random weights (one model.safetensors)"
        + (" and the same OpenBLAS." if products == "the BLAS" else
           "; the peer's products are OpenBLAS's.")
        + f" Each statistics figure is the fastest of {len(rounds)} rounds taken in turn with "
        "the peers' (each round the fastest of 3 runs on either side).",
        "",
        *rows,
    ])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--command", required=True)
    p.add_argument("--write")
    args = p.parse_args()
    text = table(args.dir, args.command)
    print(text)
    if args.write:
        doc = open(args.write).read()
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in doc:
            doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
        else:
            raise SystemExit(f"{args.write} has no '{BEGIN}' marker")
        tmp = args.write + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, args.write)


if __name__ == "__main__":
    main()
