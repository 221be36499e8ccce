"""The ONNX embedder's tokenizer. The only module that imports sentencepiece.

multilingual-e5's tokenizer is a SentencePiece Unigram model of 250k pieces. The `tokenizers`
library holds it in a byte trie of hash maps: ~250 MB in every serving process, half a replica's
memory. SentencePiece runs the same model from a double-array trie in ~50 MB. This module reads
the model's tokenizer.json, gives its pieces and scores to SentencePiece, and keeps from
`tokenizers` only the normalizer and the pre-tokenizer (a tokenizer without vocabulary): the ids
are the same (tests/test_model_parity.py compares them on Vietnamese questions and passages).
Any tokenizer.json of another shape (WordPiece, BPE …) is run by `tokenizers` as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask), padded to the longest text of the batch."""
        ...

    def count(self, text: str) -> int:
        """Tokens of one text, special tokens included."""
        ...

    def pieces(self, text: str) -> list[int]:
        """Token ids of one text without special tokens or truncation (the reader's units)."""
        ...


class HfEncoder:
    """tokenizer.json run by the `tokenizers` library."""

    def __init__(self, path: Path, max_len: int) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.enable_truncation(max_length=max_len)
        pad_id = self._tok.token_to_id("<pad>")
        self._tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="<pad>")

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self._tok.encode_batch(texts)
        return (
            np.array([e.ids for e in enc], dtype=np.int64),
            np.array([e.attention_mask for e in enc], dtype=np.int64),
        )

    def count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def pieces(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)


class PieceEncoder:
    """A Unigram tokenizer.json run by SentencePiece, with the same ids as `tokenizers` gives."""

    def __init__(self, bare: dict[str, Any], proto: bytes, max_len: int) -> None:
        """`bare`: tokenizer.json without its vocabulary (its normalizer, pre-tokenizer, added
        tokens and template); `proto`: the vocabulary as a SentencePiece model (`model_proto`)."""
        from tokenizers import Tokenizer

        if not proto:  # SentencePiece takes b"" without complaint, then fails on every encode
            raise RuntimeError("empty SentencePiece model")
        self._sp = _processor(hashlib.sha256(proto).hexdigest(), proto)
        self._text = Tokenizer.from_str(json.dumps(bare))
        added = {t["content"]: t for t in bare.get("added_tokens", [])}
        self._ids = {c: int(t["id"]) for c, t in added.items()}
        self._lstrip = {c for c, t in added.items() if t.get("lstrip")}
        self._split = re.compile("(" + "|".join(map(re.escape, sorted(added, key=len, reverse=True))) + ")")
        template = bare["post_processor"]["single"]
        at = _sequence_at(template)
        self._before = [self._ids[t["SpecialToken"]["id"]] for t in template[:at]]
        self._after = [self._ids[t["SpecialToken"]["id"]] for t in template[at + 1 :]]
        self._max = max_len - len(self._before) - len(self._after)
        self._pad = self._ids.get("<pad>", 0)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], max_len: int) -> tuple[PieceEncoder, dict[str, Any], bytes]:
        """The encoder of a tokenizer.json, and its two parts (for `load_encoder`'s cache)."""
        from sentencepiece import sentencepiece_model_pb2 as pb

        model = spec["model"]
        specials = {t["id"] for t in spec.get("added_tokens", [])}
        proto = pb.ModelProto()  # type: ignore[attr-defined]
        proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM  # type: ignore[attr-defined]
        proto.trainer_spec.unk_id = model["unk_id"]
        kinds = pb.ModelProto.SentencePiece  # type: ignore[attr-defined]
        for i, (piece, score) in enumerate(model["vocab"]):
            p = proto.pieces.add()
            p.piece, p.score = piece, score
            p.type = (
                kinds.UNKNOWN if i == model["unk_id"] else kinds.CONTROL if i in specials else kinds.NORMAL
            )
        # Normalising and the "▁" marks are done by `tokenizers`: SentencePiece only segments.
        proto.normalizer_spec.name = "identity"
        proto.normalizer_spec.add_dummy_prefix = False
        proto.normalizer_spec.remove_extra_whitespaces = False
        proto.normalizer_spec.escape_whitespaces = False
        bare = {**spec, "model": {**model, "vocab": model["vocab"][: model["unk_id"] + 1]}}
        raw = proto.SerializeToString()
        return cls(bare, raw, max_len), bare, raw

    @staticmethod
    def fits(spec: dict[str, Any]) -> bool:
        """Whether a tokenizer.json has the shape this encoder reproduces exactly."""
        pre, post = spec.get("pre_tokenizer") or {}, spec.get("post_processor") or {}
        return (
            spec.get("model", {}).get("type") == "Unigram"
            and not spec["model"].get("byte_fallback")
            and pre.get("type") == "Metaspace"
            and pre.get("split") is False
            and post.get("type") == "TemplateProcessing"
            and _sequence_at(post.get("single", [])) >= 0
        )

    def _ids_of(self, text: str) -> list[int]:
        return self._before + self.pieces(text)[: self._max] + self._after

    def pieces(self, text: str) -> list[int]:
        ids: list[int] = []
        parts = self._split.split(text) if self._ids else [text]
        for n, part in enumerate(parts):
            if part in self._ids:
                ids.append(self._ids[part])
                continue
            if n + 1 < len(parts) and parts[n + 1] in self._lstrip:
                part = part.rstrip()
            if not part:
                continue
            normal = self._text.normalizer.normalize_str(part) if self._text.normalizer else part
            pre = "".join(p for p, _ in self._text.pre_tokenizer.pre_tokenize_str(normal))
            ids += self._sp.encode(pre)
        return ids

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = [self._ids_of(t) for t in texts]
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask

    def count(self, text: str) -> int:
        return len(self._ids_of(text))


_PROCESSORS: dict[str, Any] = {}
_PROCESSORS_LOCK = threading.Lock()


def _processor(digest: str, proto: bytes) -> Any:
    """One SentencePiece processor per model in a process: the embedder and the reader read the
    same vocabulary (from two folders), and loading it costs ~0.3 s and ~50 MB each time."""
    import sentencepiece as spm

    with _PROCESSORS_LOCK:
        if digest not in _PROCESSORS:
            _PROCESSORS[digest] = spm.SentencePieceProcessor(model_proto=proto)
        return _PROCESSORS[digest]


def _sequence_at(template: list[dict[str, Any]]) -> int:
    return next((i for i, t in enumerate(template) if "Sequence" in t), -1)


def load_encoder(path: Path, max_len: int) -> Encoder:
    """The encoder of a tokenizer.json. The SentencePiece form of a Unigram one is kept beside it
    (`tokenizer.spm` and `tokenizer.bare.json`, keyed by the file's size and time): parsing the
    250k-piece JSON and building that form took 0.7-1.5 s of every one-shot `de06qa ask`."""
    spm_file, bare_file = path.with_name("tokenizer.spm"), path.with_name("tokenizer.bare.json")
    key = [path.stat().st_size, path.stat().st_mtime_ns]
    try:
        bare = json.loads(bare_file.read_text(encoding="utf-8"))
        if bare.pop("de06qa_source", None) == key:
            return PieceEncoder(bare, spm_file.read_bytes(), max_len)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError):
        pass  # no cache yet, or a stale or damaged one: made again below
    spec = json.loads(path.read_text(encoding="utf-8"))
    if PieceEncoder.fits(spec):
        try:
            enc, bare, raw = PieceEncoder.from_spec(spec, max_len)
        except ImportError:  # sentencepiece not installed: the library's own tokenizer
            return HfEncoder(path, max_len)
        _write_cache(spm_file, bare_file, raw, {**bare, "de06qa_source": key})
        return enc
    return HfEncoder(path, max_len)


def _write_cache(spm_file: Path, bare_file: Path, raw: bytes, bare: dict[str, Any]) -> None:
    """Best effort: a cache folder this process cannot write (a server user's) only costs time.
    Each file is written beside its place and renamed in, so a reader never sees half of one."""
    try:
        for target, data in ((spm_file, raw), (bare_file, json.dumps(bare).encode())):
            tmp = target.with_name(f".{target.name}.{os.getpid()}")
            tmp.write_bytes(data)
            tmp.chmod(0o644)
            tmp.replace(target)
    except OSError:
        pass
