#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) from the real files
in tests/golden: small safetensors files cut from the golden checkpoints (float32, bfloat16,
with metadata), their sharded index, every golden config.json, GPT-2's vocab/merges and the
Llama-3-style and SentencePiece-converted tokenizer.json files trimmed to their first merges,
and WordPiece's vocab.txt (the Lua seeds, corpus/lua, are hand-written scripts that use the
API). Standard library only; rerun after a
golden file changes (the corpus is committed). Seeds stay small, as fuzzing wants them.

    tests/fuzz/make_seeds.py
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\n--llmscope-fuzz-part--\n"

# The Lua seeds (corpus/lua) are written by hand; these folders are generated.
GENERATED = ["safetensors", "safetensors_index", "config", "bpe_files", "tokenizer_json", "wordpiece"]

TEXTS = [
    "Hello world",
    " The cat sat on the mat.\n\nIt's 2024: naïve café, 日本語 🙂",
    "<|endoftext|>a<s>b</s>[CLS] x [SEP] [MASK]<|begin_of_text|>",
    "   spaces\tand\ttabs\r\n",
    "12345 67,890.5 don't I'll we've",
]


def read(path):
    with open(os.path.join(GOLDEN, path), "rb") as f:
        return f.read()


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors_parts(data):
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    return header, data[8 + n :]


def cut_safetensors(data, max_tensors, max_bytes):
    """The smallest tensors of a real file, re-packed: a real header layout, real bytes."""
    header, body = safetensors_parts(data)
    meta = header.pop("__metadata__", None)
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    out_header, out_body = {}, b""
    for name, info in entries[:max_tensors]:
        begin, end = info["data_offsets"]
        if len(out_body) + end - begin > max_bytes:
            break
        out_header[name] = {"dtype": info["dtype"], "shape": info["shape"],
                            "data_offsets": [len(out_body), len(out_body) + end - begin]}
        out_body += body[begin:end]
    if meta is not None:
        out_header["__metadata__"] = meta
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + out_body


def trim_tokenizer_json(data, merges_kept):
    tok = json.loads(data)
    model = tok["model"]
    merges = model.get("merges", [])[:merges_kept]
    keep = set()
    for m in merges:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        keep.update([a, b, a + b])
    vocab = model["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    kept = {k: v for k, v in by_id if v < 300 or k in keep}
    # Ids stay as in the real file (gaps are allowed); added tokens keep theirs.
    model["vocab"] = kept
    model["merges"] = merges
    return json.dumps(tok, ensure_ascii=False).encode()


def main():
    for target in GENERATED:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
    # safetensors: float32 (GPT-2), bfloat16 (Llama), with metadata (BERT), GPT-NeoX.
    for folder in ["gpt2-tiny", "llama-tiny", "bert-tiny", "pythia-tiny", "qwen2-tiny"]:
        data = read(os.path.join(folder, "model.safetensors"))
        write("safetensors", folder, cut_safetensors(data, 4, 4096))
    write("safetensors", "empty", struct.pack("<Q", 8) + b"{}      ")
    # A sharded index naming its shard.
    for folder in ["gpt2-tiny", "llama-tiny", "qwen2-tiny"]:
        shard = cut_safetensors(read(os.path.join(folder, "model.safetensors")), 3, 2048)
        header, _ = safetensors_parts(shard)
        index = {"metadata": {"total_size": len(shard)},
                 "weight_map": {k: "shard.safetensors" for k in header if k != "__metadata__"}}
        write("safetensors_index", folder, json.dumps(index, indent=2).encode() + SEP + shard)
    # config.json of every golden architecture.
    for folder in ["gpt2-tiny", "gpt-neo-tiny", "pythia-tiny", "llama-tiny", "qwen2-tiny", "bert-tiny"]:
        write("config", folder, read(os.path.join(folder, "config.json")))
    # GPT-2's vocab.json + merges.txt, cut to the byte alphabet and the first merges.
    vocab = json.loads(read("tokenizers/gpt2/vocab.json"))
    merges = read("tokenizers/gpt2/merges.txt").decode().split("\n")
    for kept_merges in [40, 300]:
        lines = merges[: kept_merges + 1]  # the "#version" line first
        keep = set()
        for line in lines[1:]:
            a, b = line.split(" ")
            keep.update([a, b, a + b])
        small = {k: v for k, v in vocab.items() if v < 256 or k in keep or k == "<|endoftext|>"}
        for i, text in enumerate(TEXTS[:3]):
            write("bpe_files", f"gpt2-{kept_merges}-{i}",
                  json.dumps(small, ensure_ascii=False).encode() + SEP + "\n".join(lines).encode() + SEP + text.encode())
    # tokenizer.json: Llama-3-style byte-level BPE, and the SentencePiece conversions.
    for name, path, config in [
        ("llama3", "tokenizers/llama3-style/tokenizer.json", "tokenizers/llama3-style/tokenizer_config.json"),
        ("sp-first", "tokenizers/sentencepiece-converted/first/tokenizer.json",
         "tokenizers/sentencepiece-converted/first/tokenizer_config.json"),
        ("sp-legacy", "tokenizers/sentencepiece-converted/legacy/tokenizer.json", None),
    ]:
        trimmed = trim_tokenizer_json(read(path), 200)
        for i, text in enumerate(TEXTS[1:4]):
            write("tokenizer_json", f"{name}-{i}",
                  trimmed + SEP + (read(config) if config and i == 0 else b"") + SEP + text.encode())
    # WordPiece: BERT's vocab.txt, cased and uncased.
    vocab_txt = read("tokenizers/wordpiece/vocab.txt")
    for i, (config, text) in enumerate([(b"", TEXTS[0]), (b'{"do_lower_case": false}', TEXTS[1]),
                                        (b'{"do_lower_case": true, "tokenize_chinese_chars": true}', TEXTS[2])]):
        write("wordpiece", f"bert-{i}", vocab_txt + SEP + config + SEP + text.encode())


if __name__ == "__main__":
    main()
