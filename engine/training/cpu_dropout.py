"""Dropout with a cheaper random source, for training on CPU.

Why this exists: on CPU, PyTorch's dropout draws one Mersenne-Twister number per element
(`bernoulli_`), and with attention dropout on 16 x 12 x 128 x 128 probabilities per layer
that is about a ninth of a MiniLM training step (measured with torch.profiler; see
bench/train_throughput.py). Here one 32-bit draw gives two 16-bit uniforms, compared with
round(p * 65536): the drop probability is p to within 1/65536 and the kept values are
scaled by the exact inverse keep probability, so the expected activation is unchanged.
On a GPU PyTorch's fused dropout is already cheap and nothing here is used.

The attention probabilities are dropped inside the attention function, so the attention
part is a function registered through transformers' AttentionInterface (its documented
extension point), not a patch of the model code. `install` registers it (nothing is
registered at import) and switches a model to it for training. Neither change reaches a
saved model (dropout modules have no state and the attention choice is not written to
config.json), so training never needs `uninstall`; it is there for code that hands the
same model object on in memory. engine/training/cpu_speedups.py decides when to install it.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from engine.offline import env_flag

ATTENTION = "mlm_studio_cpu_dropout"
_LEVELS = 1 << 16


def wanted() -> bool:
    """On unless MLM_NATIVE_DROPOUT=1 asks for PyTorch's own dropout (to compare, or to rule this out)."""
    return not env_flag("MLM_NATIVE_DROPOUT")


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A boolean keep-mask (True with probability ~1-p) and the scale that keeps the mean."""
    n = shape.numel()
    draws = torch.empty((n + 1) // 2, dtype=torch.int32, device=device).random_(-(2**31), 2**31)
    cut = round(p * _LEVELS)  # drop when the 16-bit uniform falls below this
    keep = draws.view(torch.int16)[:n] >= cut - _LEVELS // 2
    return keep.view(shape), _LEVELS / (_LEVELS - cut)


def cheap_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    if p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep, scale = keep_mask(x.shape, p, x.device)
    # One multiply by a float mask: backward is then one multiply too (a where() costs two).
    return x * torch.where(keep, scale, 0.0).to(x.dtype)


class CpuDropout(nn.Dropout):
    """nn.Dropout with the cheaper mask above (same p, same eval behaviour)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cheap_dropout(x, self.p) if self.training else x


def attention(module: nn.Module, query, key, value, attention_mask, dropout: float = 0.0,
              scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' attention call: SDPA when nothing is dropped (eval, or p = 0), else the
    same arithmetic as transformers' eager attention with the cheaper dropout."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    if dropout == 0.0 or causal or key.shape[1] != query.shape[1]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    # Scaling the queries rather than the scores touches a quarter of the numbers at sequence 128.
    scores = torch.matmul(query * scaling, key.transpose(2, 3))
    if attention_mask is not None:  # the SDPA-style mask: boolean (True = attend) or additive
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    probs = cheap_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make ATTENTION a name transformers knows (idempotent). Done by install(), not at import,
    so that importing this module changes no global registry."""
    AttentionInterface.register(ATTENTION, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def install(model: nn.Module) -> dict:
    """Switch a model's dropout to the cheaper mask for CPU training; returns what `uninstall` needs."""
    register()
    swapped = [m for m in model.modules() if type(m) is nn.Dropout]
    for m in swapped:
        m.__class__ = CpuDropout
    # Every submodule holding the (shared) config; eager or other choices stay what the user made.
    configs = {id(m.config): m.config for m in model.modules()
               if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa"}
    for config in configs.values():
        config._attn_implementation = ATTENTION
    return {"modules": swapped, "configs": list(configs.values())}


def uninstall(state: dict) -> None:
    for m in state["modules"]:
        m.__class__ = nn.Dropout
    for config in state["configs"]:
        config._attn_implementation = "sdpa"
