"""GPU presets for the cost estimate: memory, peak dense throughput and an hourly price.

Every figure is a starting point the user can edit in the Costs tab. Throughput is the
vendor's *dense* tensor-core peak (no 2:4 sparsity) for 16-bit formats, and the plain
FP32 peak (PyTorch does not use TF32 for matmuls unless asked to). Memory is what
`torch.cuda.get_device_properties(0).total_memory` reports, in GiB: a little less than
the marketed "GB". Prices change often; each one names where and when it was read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from engine.errors import UserError
from engine.numbers import GIB
from engine.numbers import number as parse_number


@dataclass(frozen=True)
class GpuPreset:
    name: str
    memory_gib: float
    tflops_16bit: float  # dense fp16/bf16 tensor-core peak
    tflops_fp32: float  # dense fp32 (non-tensor-core) peak
    price_per_hour: float  # US dollars
    price_date: str  # when the price was read
    price_source: str

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    def peak_flops(self, precision: str) -> float:
        """FLOP/s the matmuls can reach at best in this precision."""
        tflops = self.tflops_fp32 if precision == "fp32" else self.tflops_16bit
        return tflops * 1e12

    def as_dict(self) -> dict:
        return asdict(self)

    def edited(self, **changes) -> GpuPreset:
        """A copy with user-typed fields, each checked: a price of 'abc' gets a clear message."""
        checked = {}
        for key, value in changes.items():
            if value is None or value == "":
                continue
            if key in ("name", "price_date", "price_source"):
                checked[key] = str(value)
            else:
                checked[key] = _positive_number(key, value, allow_zero=key == "price_per_hour")
        return replace(self, **checked)


_HF = "Hugging Face Spaces/Jobs hardware price list"
_LAMBDA = "Lambda on-demand price per GPU (lambda.ai/instances)"

PRESETS: dict[str, GpuPreset] = {
    p.name: p
    for p in (
        GpuPreset("NVIDIA T4 (16 GB)", 14.7, 65.0, 8.1, 0.40, "2026-09", _HF + " (T4 small)"),
        GpuPreset("NVIDIA L4 (24 GB)", 22.5, 121.0, 30.3, 0.80, "2026-09", _HF + " (1x L4)"),
        GpuPreset("NVIDIA A10G (24 GB)", 22.5, 70.0, 31.2, 1.00, "2023-10", _HF + " (A10G small)"),
        GpuPreset("NVIDIA L40S (48 GB)", 45.0, 362.0, 91.6, 1.80, "2026-09", _HF + " (1x L40S)"),
        GpuPreset("NVIDIA A100 (40 GB)", 39.4, 312.0, 19.5, 1.99, "2026-09", _LAMBDA + " (A100 SXM 40 GB)"),
        GpuPreset("NVIDIA A100 (80 GB)", 79.2, 312.0, 19.5, 2.79, "2026-09", _LAMBDA + " (A100 SXM 80 GB)"),
        GpuPreset("NVIDIA H100 SXM (80 GB)", 79.2, 989.0, 67.0, 3.99, "2026-09", _LAMBDA + " (H100 SXM)"),
        GpuPreset("NVIDIA H200 (141 GB)", 139.8, 989.0, 67.0, 3.99, "2026-09",
                  "assumed equal to the H100 price; check your provider"),
    )
}
DEFAULT_GPU = "NVIDIA T4 (16 GB)"


def preset(name: str) -> GpuPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"Unknown GPU preset {name!r}; choose one of: {', '.join(PRESETS)}.") from None


def _positive_number(key: str, value, allow_zero: bool = False) -> float:
    label = key.replace("_", " ").replace("tflops 16bit", "16-bit TFLOPS").replace("tflops fp32", "FP32 TFLOPS")
    number = parse_number(value, f"GPU {label}")  # "$1,000" is a price too
    if number < 0 or (number == 0 and not allow_zero):
        raise UserError(f"GPU {label} must be a positive number, got {value!r}.")
    return number
