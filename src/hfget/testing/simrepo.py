"""Deterministic repositories for the hub simulator: files of any size without holding them in memory.

A `PatternContent` of hundreds of MB is defined by a seed: its bytes are a 1 MiB random block, rotated by a
different amount in every 1 MiB chunk, so any byte range can be produced in O(length) and the hashes are computed
once, lazily. Commit shas are derived from the content, so the same repo definition always has the same commits.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from functools import cached_property

BLOCK = 1 << 20
# The demo repos every test and `make demo` use (demo_repos).
DEMO_MODEL = "hfget-demo/tiny-model"
DEMO_DATASET = "hfget-demo/tiny-dataset"


class Content:
    size: int

    def read(self, offset: int, length: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def iter_range(self, start: int, end: int, chunk: int = 256 * 1024):
        """Yield the bytes of [start, end) in chunks."""
        pos = start
        while pos < end:
            n = min(chunk, end - pos)
            yield self.read(pos, n)
            pos += n

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for piece in self.iter_range(0, self.size, BLOCK):
            h.update(piece)
        return h.hexdigest()

    @cached_property
    def git_sha1(self) -> str:
        h = hashlib.sha1(b"blob %d\0" % self.size)
        for piece in self.iter_range(0, self.size, BLOCK):
            h.update(piece)
        return h.hexdigest()

    def all_bytes(self) -> bytes:
        return self.read(0, self.size)


class BytesContent(Content):
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.size = len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


_BLOCKS: dict[int, bytes] = {}
_BLOCKS_LOCK = threading.Lock()


def _block(seed: int) -> bytes:
    with _BLOCKS_LOCK:
        block = _BLOCKS.get(seed)
        if block is None:
            block = _BLOCKS[seed] = random.Random(seed).randbytes(BLOCK)
        return block


class PatternContent(Content):
    """`size` pseudo-random bytes determined by `seed`; cheap random access."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed

    def read(self, offset: int, length: int) -> bytes:
        block = _block(self.seed)
        end = min(self.size, offset + length)
        out = bytearray()
        pos = offset
        while pos < end:
            chunk_index, within = divmod(pos, BLOCK)
            shift = (chunk_index * 7919 + self.seed) % BLOCK
            # chunk k is the block rotated left by `shift`
            start = (within + shift) % BLOCK
            n = min(end - pos, BLOCK - within)
            first = block[start : start + n]
            out += first
            if len(first) < n:
                out += block[: n - len(first)]
            pos += n
        return bytes(out)


def lfs_pointer(content: Content) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{content.sha256}\nsize {content.size}\n"
    ).encode()


@dataclass
class SimFile:
    path: str
    content: Content
    lfs: bool = False

    @property
    def size(self) -> int:
        return self.content.size

    @cached_property
    def pointer(self) -> bytes:
        return lfs_pointer(self.content)

    @property
    def blob_id(self) -> str:
        """The git oid: of the pointer file for LFS files, of the content otherwise."""
        if self.lfs:
            return hashlib.sha1(b"blob %d\0" % len(self.pointer) + self.pointer).hexdigest()
        return self.content.git_sha1

    @property
    def etag(self) -> str:
        return self.content.sha256 if self.lfs else self.content.git_sha1

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.content.sha256, "size": self.size, "pointerSize": len(self.pointer)}
        return entry


@dataclass
class SimRepo:
    """A repo with commits (each a full file set) and refs pointing at them."""

    repo_id: str
    repo_type: str = "model"
    gated: bool = False
    private: bool = False
    modelscope_id: str | None = None  # served under this id by the ModelScope protocol, if set
    commits: dict[str, dict[str, SimFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    commit_order: list[str] = field(default_factory=list)

    def commit(self, files: list[SimFile], ref: str = "main", message: str = "") -> str:
        h = hashlib.sha1(f"{self.repo_type}/{self.repo_id}\n{message}\n".encode())
        if self.refs.get(ref):
            h.update(self.refs[ref].encode())
        for f in sorted(files, key=lambda f: f.path):
            h.update(f"{f.path}\0{f.blob_id}\n".encode())
        sha = h.hexdigest()
        self.commits[sha] = {f.path: f for f in files}
        self.refs[ref] = sha
        self.commit_order.append(sha)
        return sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        if revision in self.commits:
            return revision
        return None

    @property
    def key(self) -> tuple[str, str]:
        return (self.repo_type, self.repo_id)


def text_file(path: str, text: str) -> SimFile:
    return SimFile(path, BytesContent(text.encode()))


def blob_file(path: str, size: int, seed: int, lfs: bool = True) -> SimFile:
    return SimFile(path, PatternContent(size, seed), lfs=lfs)


def tree_entries(files: dict[str, SimFile], path: str, recursive: bool) -> list[dict] | None:
    prefix = f"{path}/" if path else ""
    dirs: dict[str, None] = {}
    entries: list[dict] = []
    for f in sorted(files.values(), key=lambda f: f.path):
        if not f.path.startswith(prefix):
            continue
        rel = f.path[len(prefix) :]
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            d = prefix + "/".join(parts[:depth])
            if (recursive or depth == 1) and d not in dirs:
                dirs[d] = None
                entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
        if recursive or len(parts) == 1:
            entries.append(f.tree_entry())
    if path and not entries:
        return None
    return entries




def model_repo(repo_id: str, files: dict[str, bytes], lfs_suffixes: tuple[str, ...] = (".safetensors",)) -> SimRepo:
    """A repo of real files (e.g. testing/tinymodel.py's tiny Qwen2), weights stored in LFS as on the hub."""
    repo = SimRepo(repo_id)
    repo.commit([SimFile(name, BytesContent(data), lfs=name.endswith(lfs_suffixes)) for name, data in sorted(files.items())])
    return repo


def demo_repos(large_mb: int = 24) -> list[SimRepo]:
    """The repos the demo and most tests use: a small model, a dataset, and a gated model."""
    model = SimRepo(DEMO_MODEL)
    config = '{\n  "architectures": ["TinyForCausalLM"],\n  "hidden_size": 64,\n  "model_type": "tiny"\n}\n'
    common = [
        text_file("README.md", "# tiny-model\n\nA deterministic demo repo served by hfget's hub simulator.\n"),
        text_file("config.json", config),
        text_file("tokenizer/vocab.txt", "\n".join(f"tok{i}" for i in range(2000)) + "\n"),
        blob_file("tokenizer/tokenizer.json", 300_000, seed=11, lfs=False),
        blob_file("onnx/model.onnx", 3 * 1024 * 1024 + 123, seed=12),
    ]
    model.commit(common + [blob_file("model.safetensors", large_mb * 1024 * 1024 + 4567, seed=13)], message="v1")
    model.refs["v1.0"] = model.refs["main"]
    # A second revision: the weights change, everything else is shared (so blobs are reused across revisions).
    model.commit(
        common + [blob_file("model.safetensors", large_mb * 1024 * 1024 + 9999, seed=14)], ref="main", message="v2"
    )

    dataset = SimRepo(DEMO_DATASET, repo_type="dataset")
    dataset.commit(
        [
            text_file("README.md", "# tiny-dataset\n"),
            blob_file("data/train/part-00000.parquet", 700_000, seed=21),
            blob_file("data/train/part-00001.parquet", 650_000, seed=22),
            blob_file("data/test/part-00000.parquet", 90_000, seed=23),
            text_file("data/empty.txt", ""),
        ]
    )

    gated = SimRepo("hfget-demo/gated-model", gated=True)
    gated.commit([text_file("config.json", '{"gated": true}\n'), blob_file("model.safetensors", 200_000, seed=31)])
    return [model, dataset, gated]


ODD_NAMES_REPO = "hfget-demo/odd-names"


def odd_names_repo() -> SimRepo:
    """A repo whose paths are legal on the hub and awkward everywhere else: Rich markup (`[train]`, `[/]`), spaces,
    literal `%xx`, URL delimiters (`#`, `?`, `&`, `+`), Chinese and emoji. For the tests of escaping and quoting;
    the demo repos stay as they are."""
    repo = SimRepo(ODD_NAMES_REPO)
    repo.commit(
        [
            text_file("README.md", "# odd-names\n"),
            blob_file("data/[train]x.parquet", 3 * 1024 * 1024 + 17, seed=41),
            blob_file("data/[test]/part [0].parquet", 600_000, seed=42),
            text_file("[/]odd.txt", "a file whose name closes a Rich tag\n"),
            text_file("[bold red]not markup[/bold red].md", "plain text\n"),
            text_file("with space/file name.txt", "spaces in folder and file\n"),
            text_file("percent%20literal%2F.txt", "a literal %20 and %2F in the name\n"),
            text_file("hash # and ? q=1 & a+b.txt", "URL delimiters in a name\n"),
            text_file("中文目录/模型 配置.json", '{"语言": "中文"}\n'),
            blob_file("权重/模型 权重.safetensors", 1_200_000, seed=43),
            text_file("emoji 🤗.txt", "hugging face\n"),
        ],
        message="odd names",
    )
    repo.refs["v1.0"] = repo.refs["main"]
    return repo
