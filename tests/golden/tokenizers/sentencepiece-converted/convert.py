#!/usr/bin/env python3
"""Writes the tokenizer.json files in this folder from ../sentencepiece/tokenizer.model, the way
transformers' LlamaConverter converts a Llama SentencePiece model (standard library only: the
model file's protobuf is read by hand).

  legacy/tokenizer.json  LlamaTokenizerFast with legacy=True: Prepend("▁") + Replace(" ", "▁")
                         normalizer, no pre-tokenizer
  first/tokenizer.json   legacy=False: Metaspace(prepend_scheme="first", split=False)

Both: BPE with byte_fallback and fuse_unk, merges generated from the pieces' scores as
transformers' generate_merges does, the decoder Replace/ByteFallback/Fuse/Strip, and the
"<s> $A" template. The test checks them against the SentencePiece library's own goldens, so a
conversion that differed from SentencePiece would fail there.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            sys.exit(f"unexpected wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def pieces(path):
    out = []
    with open(path, "rb") as f:
        for number, _, value in fields(f.read()):
            if number != 1:  # ModelProto.pieces
                continue
            piece, score, kind = "", 0.0, 1
            for n, _, v in fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = v
            out.append((piece, score, kind))
    return out


def generate_merges(vocab, vocab_scores):
    merges = []
    for merge, score in vocab_scores.items():
        local = []
        for k in range(1, len(merge)):
            left, right = merge[:k], merge[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        merges.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [[left, right] for left, right, _ in merges]


def tokenizer_json(all_pieces, legacy):
    scores = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
    scores += [(p, s) for p, s, _ in all_pieces[3:]]
    vocab = {p: i for i, (p, _) in enumerate(scores)}
    sp_vocab = {p: i for i, (p, _, _) in enumerate(all_pieces)}
    merges = generate_merges(sp_vocab, dict(scores))
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    if legacy:
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        pre = None
    else:
        normalizer = None
        pre = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
               "split": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def main():
    all_pieces = pieces(os.path.join(HERE, "..", "sentencepiece", "tokenizer.model"))
    for name, legacy in (("legacy", True), ("first", False)):
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        with open(os.path.join(HERE, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(all_pieces, legacy), f, ensure_ascii=False)
        config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                  "eos_token": "</s>", "unk_token": "<unk>", "legacy": legacy,
                  "tokenizer_class": "LlamaTokenizer"}
        with open(os.path.join(HERE, name, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)


if __name__ == "__main__":
    main()
