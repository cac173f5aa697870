#!/usr/bin/env python3
"""`llmscope pull` end to end against tests/hub/fake_hub.py on 127.0.0.1: exit codes, output,
that `--model NAME` then finds what was pulled, and Ctrl-C during a download then a resume. Usage: pull_cli_test.py --llmscope PATH"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE.parent / "golden"
COMMIT = "6c0e6080953db56375760c0471a8c5f2929baf11"
failures = []


def check(condition, what, output=""):
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)
        if output:
            print("      output: " + output.replace("\n", "\n              "))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llmscope", required=True)
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="llmscope-pull-cli-"))
    config = {"repos": {"gpt2": {"revisions": {"main": COMMIT}, "commits": {COMMIT: {
        "config.json": str(GOLDEN / "gpt2-tiny/config.json"),
        "model.safetensors": str(GOLDEN / "gpt2-tiny/model.safetensors"),
        "vocab.json": str(GOLDEN / "tokenizers/gpt2/vocab.json"),
        "merges.txt": str(GOLDEN / "tokenizers/gpt2/merges.txt"),
        "meta.json": str(GOLDEN / "gpt2-tiny/meta.json")}}}}}
    (work / "config.json").write_text(json.dumps(config))
    servers = []
    server = subprocess.Popen([sys.executable, str(HERE / "fake_hub.py"), "--config", str(work / "config.json"),
                               "--port-file", str(work / "port"), "--log", str(work / "requests.jsonl"),
                               "--lifetime", "120"])
    try:
        for _ in range(400):  # up to 20 s
            if (work / "port").exists():
                break
            time.sleep(0.05)
        endpoint = "http://127.0.0.1:" + (work / "port").read_text().strip()
        cache = work / "cache"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HF_") and "proxy" not in k.lower() and k != "HUGGINGFACE_HUB_CACHE"}
        env.update({"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "no_proxy": "127.0.0.1"})

        def llmscope(*argv):
            run = subprocess.run([args.llmscope, *argv], env=env, capture_output=True, text=True, timeout=120)
            return run.returncode, run.stdout, run.stderr

        def llmscope_env(base, key, value, *argv):
            run = subprocess.run([args.llmscope, *argv], env=dict(base, **{key: value}), capture_output=True,
                                 text=True, timeout=120)
            return run.returncode, run.stdout, run.stderr

        code, out, err = llmscope("pull", "gpt2")
        check(code == 0, "pull gpt2 exits 0", out + err)
        check("gpt2@main is commit " + COMMIT in out, "pull names the commit", out)
        check("4 of 4 files downloaded" in out, "pull downloads config, tokenizer and weights only", out)
        snapshot = cache / "models--gpt2" / "snapshots" / COMMIT
        check(("snapshot " + str(snapshot)) in out, "pull prints the snapshot folder", out)

        code, out, err = llmscope("pull", "gpt2", "--json")
        summary = json.loads(out) if code == 0 else {}
        check(summary.get("bytes_downloaded") == 0 and not any(f["downloaded"] for f in summary.get("files", [])),
              "a second pull downloads nothing", out + err)

        code, out, err = llmscope("info", "--model", "gpt2", "--json")
        info = json.loads(out) if code == 0 else {}
        check(info.get("source") == str(snapshot), "info --model gpt2 reads the pulled snapshot", out + err)
        check((info.get("tokenizer") or {}).get("kind") is not None, "the pulled tokenizer is attached", out + err)

        code, out, err = llmscope("info", "--model", "gpt2-large")
        check(code == 1 and "`llmscope pull gpt2-large`" in err and "cached: gpt2" in err,
              "an unknown name suggests pull and lists the cache", err)

        code, out, err = llmscope("pull", "nobody/nothing")
        check(code == 1 and "HF_TOKEN" in err, "a 401 mentions HF_TOKEN", err)

        code, out, err = llmscope("pull", "a/b/c")
        check(code == 2 and "is not a model name" in err, "a malformed name is a usage error", err)

        # Ctrl-C during a slow download: the part stays, the next pull resumes it and checks it.
        slow_config = dict(config, throttle=150000)
        (work / "slow.json").write_text(json.dumps(slow_config))
        slow = subprocess.Popen([sys.executable, str(HERE / "fake_hub.py"), "--config", str(work / "slow.json"),
                                 "--port-file", str(work / "slow-port"), "--log", str(work / "slow.jsonl"),
                                 "--lifetime", "120"])
        servers.append(slow)
        for _ in range(400):
            if (work / "slow-port").exists():
                break
            time.sleep(0.05)
        slow_env = dict(env, HF_ENDPOINT="http://127.0.0.1:" + (work / "slow-port").read_text().strip(),
                        HF_HUB_CACHE=str(work / "cache2"))
        pull = subprocess.Popen([args.llmscope, "pull", "gpt2"], env=slow_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        blobs = work / "cache2" / "models--gpt2" / "blobs"
        part = None
        for _ in range(600):  # up to 30 s
            parts = list(blobs.glob("*.incomplete")) if blobs.exists() else []
            if parts and parts[0].stat().st_size > 100000:
                part = parts[0]
                break
            time.sleep(0.05)
        check(part is not None, "a slow download leaves a growing .incomplete file")
        pull.send_signal(signal.SIGINT)
        try:
            out, err = pull.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pull.kill()
            out, err = pull.communicate()
        check(pull.returncode == 130, "Ctrl-C stops pull with exit 130", err)
        check("again to resume" in err and ".incomplete" in err, "pull says where the part is kept", err)
        kept = part.stat().st_size if part is not None and part.exists() else 0
        check(kept > 0, "the partial download is kept", str(kept))
        snapshot2 = work / "cache2" / "models--gpt2" / "snapshots" / COMMIT
        check(not (work / "cache2" / "models--gpt2" / "refs" / "main").exists(),
              "no ref for the unfinished pull")
        code, out, err = llmscope_env(slow_env, "HF_ENDPOINT", endpoint, "pull", "gpt2")
        check(code == 0, "the next pull completes", out + err)
        requests = [json.loads(line) for line in (work / "requests.jsonl").read_text().splitlines()]
        check(any(r.get("range") == "bytes=%d-" % kept for r in requests), "it resumes with a Range request")
        files = config["repos"]["gpt2"]["commits"][COMMIT]
        check(all((snapshot2 / name).read_bytes() == pathlib.Path(files[name]).read_bytes()
                  for name in ["config.json", "model.safetensors", "vocab.json", "merges.txt"]),
              "every file of the resumed pull is whole")

        # Two pulls of one model into one cache at once: one waits on the other's lock; both end
        # with whole files.
        both_env = dict(slow_env, HF_HUB_CACHE=str(work / "cache3"))
        pulls = [subprocess.Popen([args.llmscope, "pull", "gpt2"], env=both_env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=120)[0] for p in pulls]
        check(all(p.returncode == 0 for p in pulls), "two concurrent pulls both succeed", "\n".join(outputs))
        check(any("waiting for another process downloading" in o for o in outputs),
              "one waits for the other's download lock", "\n".join(outputs))
        snapshot3 = work / "cache3" / "models--gpt2" / "snapshots" / COMMIT
        check(all((snapshot3 / name).read_bytes() == pathlib.Path(files[name]).read_bytes()
                  for name in ["config.json", "model.safetensors", "vocab.json", "merges.txt"]),
              "the concurrently pulled files are whole")
    finally:
        for process in [server] + servers:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
