"""The real CLIP BPE tokenizer (49408 tokens), built offline from open_clip_torch's vocabulary.

open_clip_torch ships `bpe_simple_vocab_16e6.txt.gz`, the merge list OpenAI CLIP's own
SimpleTokenizer reads. The vocabulary is rebuilt the way CLIP builds it (256 byte symbols,
the same with '</w>', one token per merge, then the two special tokens) and written as the
vocab.json/merges.txt pair that transformers' CLIPTokenizer loads, so token ids here are
exactly those of every Stable Diffusion 1.x checkpoint.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
from pathlib import Path

from transformers import CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.workspace import write_bytes_atomic

VOCAB_SIZE = 49408
_N_MERGES = 49152 - 256 - 2  # CLIP keeps merges[1 : 49152 - 256 - 2 + 1]


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible table from bytes to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def open_clip_bpe_path() -> Path:
    """Where open_clip_torch keeps its BPE merge list (found without importing open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise PortraitistError("open_clip_torch is not installed; run `bash scripts/setup.sh`.")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise PortraitistError(f"{path} is missing; reinstall open_clip_torch.")
    return path


def write_clip_vocab(out_dir: Path, bpe_path: Path | None = None) -> Path:
    """Write vocab.json and merges.txt for CLIPTokenizer into out_dir; return out_dir."""
    lines = gzip.decompress((bpe_path or open_clip_bpe_path()).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    # each file whole or not at all: processes that build the cache at once write the same bytes
    ids = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False)
    write_bytes_atomic(out_dir / "vocab.json", ids.encode())
    write_bytes_atomic(
        out_dir / "merges.txt", ("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n").encode()
    )
    return out_dir


def _cache_dir() -> Path:
    root = os.environ.get("PORTRAITIST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "portraitist"
    )
    return Path(root) / "clip-tokenizer"


@functools.lru_cache(maxsize=1)
def _vocab_dir() -> Path:
    out = _cache_dir()
    if not (out / "vocab.json").exists() or not (out / "merges.txt").exists():
        write_clip_vocab(out)
    return out


def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """A fresh CLIPTokenizer with the real 49408-token vocabulary (callers may add tokens to it);
    SDXL's second tokenizer pads with "!" instead of the end token."""
    vocab = _vocab_dir()
    return CLIPTokenizer(
        str(vocab / "vocab.json"), str(vocab / "merges.txt"), model_max_length=77, pad_token=pad_token
    )
