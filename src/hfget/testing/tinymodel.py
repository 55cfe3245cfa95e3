#!/usr/bin/env python3
"""A tiny but real Qwen2 model repo, byte-for-byte the same on every run: a byte-level BPE tokenizer trained on a
built-in English and Chinese text, Qwen2.5-style tokenizer files, a 2-layer Qwen2 config and safetensors weights
(about 160 KB in all). The test repo `hfget-demo/tiny-qwen2` that transformers loads in tests/test_transformers.py.

Standard library only, so it runs in any venv, as a script or imported (`build_files()` -> {name: bytes}). With
`--trainer tokenizers` the merges are learned by the `tokenizers` library's BPE trainer instead (deterministic too:
same bytes with 1 or 2 Rayon threads); the tests run it that way inside the transformers venv, which has it.

    python tinymodel.py OUT_DIR [--trainer python|tokenizers] [--vocab-size N] [--no-extra-files]

Files: config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, and (unless --no-extra-files) vocab.json, merges.txt, README.md. transformers loads it
without torch: AutoConfig / AutoTokenizer.from_pretrained(OUT_DIR). (From the generator a colleague wrote and
checked against transformers 4.57 and 5.24, huggingface_hub 0.36 and 2.4, Python 3.6 to 3.13.)
"""

import argparse
import json
import os
import re
import struct
import sys
from collections import Counter

# ---------------------------------------------------------------------------
# Built-in training text: English + Chinese (+ a little code and numbers).
# Changing this text changes the tokenizer (and so every file): keep it fixed.
# ---------------------------------------------------------------------------
TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.
Hugging Face hosts models, datasets and spaces. A model repository holds a
configuration file, a tokenizer and the weights of the model.
Downloading a model stores every file once in the cache: blobs are named by
their hash, snapshots point at the blobs, and refs map a branch to a commit.
The tokenizer splits text into tokens; the model reads the tokens and writes
new tokens, one at a time. Small models are quick to load and easy to test.
Hello, world! This is a tiny model for tests. It knows very little, and that
is fine: it only has to load, and to turn text into tokens and back again.
def download(repo_id, revision="main"):
    return cache.snapshot(repo_id, revision)
for i in range(10): print(i, i * i)
0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 2025 3.14 42
你好，世界！这是一个用于测试的小模型。
今天天气很好，我们去公园散步吧。
模型会把文本切分成词元，然后逐个生成新的词元。
下载模型时，每个文件只在缓存中保存一次。
中文和英文都可以被这个分词器处理。
我喜欢学习机器学习和自然语言处理。
人工智能正在改变我们的生活和工作方式。
你好世界，你好模型，你好缓存，你好测试。
"""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen2's pre-tokenizer regex (used by the tokenizer at run time).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Tiny Qwen2 dimensions.
HIDDEN = 32
INTERMEDIATE = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
MAX_POS = 512


# ---------------------------------------------------------------------------
# Byte-level BPE (GPT-2 / Qwen2 style), pure Python
# ---------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


BYTE_ENCODER = bytes_to_unicode()

# Stdlib approximation of Qwen2's \p{L} / \p{N} regex, used for training only
# (it decides which merges are learned; any merge list is a valid tokenizer).
_TRAIN_SPLIT = re.compile(
    r"'(?:[sStTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])"
    r"|[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+|_+"
)


def train_bpe_python(text, num_tokens):
    """Deterministic BPE trainer: most frequent pair wins, ties -> smallest pair.

    Merges until num_tokens new tokens exist (or no pair is left)."""
    words = Counter()
    for piece in _TRAIN_SPLIT.findall(text):
        words["".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))] += 1
    # each word as a tuple of symbols, sorted for a fixed iteration order
    corpus = [(tuple(w), c) for w, c in sorted(words.items())]
    merges, new_tokens = [], set()
    while len(new_tokens) < num_tokens:
        pairs = Counter()
        for syms, c in corpus:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        (a, b), count = best
        merges.append((a, b))
        new = a + b
        new_tokens.add(new)
        merged = []
        for syms, c in corpus:
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            merged.append((tuple(out), c))
        corpus = merged
    return merges


def train_bpe_tokenizers(text, num_tokens):
    """Same job done by the `tokenizers` library (optional dependency)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=256 + num_tokens, special_tokens=[], min_frequency=0,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(text.splitlines(keepends=True), trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def build_vocab(merges):
    """256 byte symbols (in byte order), then one token per merge, then specials."""
    vocab = {}
    for b in range(256):
        vocab[BYTE_ENCODER[b]] = len(vocab)
    for a, b in merges:
        tok = a + b
        if tok not in vocab:
            vocab[tok] = len(vocab)
    for s in SPECIAL_TOKENS:
        vocab[s] = len(vocab)
    return vocab


def tokenizer_json(vocab, merges):
    def added(tid, content):
        return {"id": tid, "content": content, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}

    bytelevel = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                 "use_regex": False}
    bpe_vocab = {k: v for k, v in vocab.items() if k not in SPECIAL_TOKENS}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(vocab[s], s) for s in SPECIAL_TOKENS],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKENIZE_REGEX},
                 "behavior": "Isolated", "invert": False},
                dict(bytelevel),
            ],
        },
        "post_processor": dict(bytelevel),
        "decoder": dict(bytelevel),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": bpe_vocab,
            # "a b" strings: read by every tokenizers version (lists need >= 0.20)
            "merges": ["%s %s" % m for m in merges],
        },
    }


# ---------------------------------------------------------------------------
# Weights: deterministic, integer PRNG + IEEE basic ops only, written by hand
# ---------------------------------------------------------------------------
def _splitmix64(seed):
    x = seed & 0xFFFFFFFFFFFFFFFF
    while True:
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        yield z ^ (z >> 31)


def _uniform_f32(n, scale, seed):
    """n float32 values uniform in [-scale, scale), little-endian bytes."""
    rng = _splitmix64(seed)
    vals = [((next(rng) >> 40) / 16777216.0 - 0.5) * (2.0 * scale) for _ in range(n)]
    return struct.pack("<%df" % n, *vals)


def _const_f32(n, value):
    return struct.pack("<%df" % n, *([value] * n))


def _name_seed(name):
    h = 1469598103934665603  # FNV-1a 64
    for ch in name.encode():
        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def model_tensors(vocab_size):
    """{name: (shape, little-endian float32 bytes)} for Qwen2ForCausalLM (tied lm_head)."""
    t = {}

    def rand(name, shape, scale=0.02):
        n = 1
        for d in shape:
            n *= d
        t[name] = (list(shape), _uniform_f32(n, scale, _name_seed(name)))

    def ones(name, shape):
        t[name] = (list(shape), _const_f32(shape[0], 1.0))

    rand("model.embed_tokens.weight", (vocab_size, HIDDEN))
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        rand(p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN))
        rand(p + "self_attn.q_proj.bias", (HEADS * HEAD_DIM,))
        rand(p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN))
        rand(p + "self_attn.k_proj.bias", (KV_HEADS * HEAD_DIM,))
        rand(p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN))
        rand(p + "self_attn.v_proj.bias", (KV_HEADS * HEAD_DIM,))
        rand(p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM))
        rand(p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN))
        rand(p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN))
        rand(p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE))
        ones(p + "input_layernorm.weight", (HIDDEN,))
        ones(p + "post_attention_layernorm.weight", (HIDDEN,))
    ones("model.norm.weight", (HIDDEN,))
    return t


def safetensors_bytes(tensors, metadata=None):
    """Serialize like safetensors' own writer (all F32 here: sorted by name).

    Layout: u64 little-endian N, N bytes of JSON header (padded with spaces to a
    multiple of 8), then the tensors' raw bytes back to back.
    """
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    names = sorted(tensors)
    for name in names:
        shape, data = tensors[name]
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(tensors[n][1] for n in names)


# ---------------------------------------------------------------------------
def _dump(obj):
    return (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def _tokenizer_files(vocab, merges):
    """tokenizer.json and the two files transformers reads beside it, as Qwen2 ships them."""
    files = {}
    files["tokenizer.json"] = (json.dumps(tokenizer_json(vocab, merges), ensure_ascii=False,
                                          separators=(",", ":")) + "\n").encode("utf-8")
    files["tokenizer_config.json"] = _dump({
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(vocab[s]): {"content": s, "lstrip": False, "normalized": False,
                            "rstrip": False, "single_word": False, "special": True}
            for s in SPECIAL_TOKENS
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MAX_POS,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    })
    files["special_tokens_map.json"] = _dump({
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "eos_token": {"content": "<|im_end|>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
        "pad_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
    })
    return files


def _model_configs(vocab_size, eot, ime):
    """config.json and generation_config.json of a Qwen2 with this module's sizes."""
    files = {}
    files["config.json"] = _dump({
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": eot,
        "eos_token_id": ime,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POS,
        "max_window_layers": LAYERS,
        "model_type": "qwen2",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    })
    files["generation_config.json"] = _dump({
        "bos_token_id": eot,
        "do_sample": False,
        "eos_token_id": [ime, eot],
        "max_new_tokens": 16,
        "pad_token_id": eot,
    })
    return files


def build_files(vocab_size=512, trainer="python", extra_files=True):
    """Return {filename: bytes}. vocab_size counts 256 bytes + merged tokens + 3 specials."""
    num_tokens = vocab_size - 256 - len(SPECIAL_TOKENS)
    if num_tokens < 0:
        raise ValueError("vocab_size must be >= %d" % (256 + len(SPECIAL_TOKENS)))
    if trainer == "python":
        merges = train_bpe_python(TRAINING_TEXT, num_tokens)
    elif trainer == "tokenizers":
        merges = train_bpe_tokenizers(TRAINING_TEXT, num_tokens)
    else:
        raise ValueError(trainer)
    vocab = build_vocab(merges)
    vocab_size = len(vocab)
    eot, ims, ime = (vocab[s] for s in SPECIAL_TOKENS)

    files = _tokenizer_files(vocab, merges)
    files.update(_model_configs(vocab_size, eot, ime))
    files["model.safetensors"] = safetensors_bytes(model_tensors(vocab_size), {"format": "pt"})
    if extra_files:
        bpe_vocab = {k: v for k, v in vocab.items() if k not in SPECIAL_TOKENS}
        files["vocab.json"] = (json.dumps(bpe_vocab, ensure_ascii=False, separators=(",", ":"))
                               + "\n").encode("utf-8")
        files["merges.txt"] = ("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges)
                               ).encode("utf-8")
        files["README.md"] = (
            "---\nlicense: apache-2.0\nlibrary_name: transformers\n"
            "pipeline_tag: text-generation\ntags:\n- tiny\n- test\n---\n\n"
            "# tiny-qwen2\n\nA 2-layer, %d-token Qwen2 with deterministic random weights, "
            "generated by make_tiny_model.py for tests. It produces nonsense.\n" % vocab_size
        ).encode("utf-8")
    return files


def write_model(out_dir, **kw):
    files = build_files(**kw)
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(files):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(files[name])
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vocab-size", type=int, default=512,
                    help="tokens in all: 256 byte tokens + merged tokens + 3 specials")
    ap.add_argument("--trainer", choices=["python", "tokenizers"], default="python")
    ap.add_argument("--no-extra-files", action="store_true", help="skip vocab.json, merges.txt and README.md")
    a = ap.parse_args(argv)
    files = write_model(a.out_dir, vocab_size=a.vocab_size, trainer=a.trainer, extra_files=not a.no_extra_files)
    for name in sorted(files):
        print("%8d  %s" % (len(files[name]), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
