"""LoRA versus full fine-tuning: parameters, memory, FLOPs, time and money, side by side.

`estimate(CostSettings(...))` returns one JSON-able dict with a "full" and a "lora"
section (the Costs tab, `python -m engine estimate` and the `/estimate` API all print
it). Exact where exactness is possible (parameter counts through peft on a meta model,
gradient and optimizer bytes), replayed op by op for activations (costs_trace.py), and
calibrated by a finished run's measured throughput when one is chosen.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from engine.costs.activations import trace_step
from engine.costs.arch import ALL_LINEAR, Arch, load_arch
from engine.costs.calibrate import calibrate
from engine.costs.flops import DEFAULT_UTILISATION, estimate_flops, estimate_time
from engine.costs.gpus import DEFAULT_GPU, GpuPreset, preset
from engine.costs.memory import MARGIN_REASON, OPTIMIZERS, checkpoint_bytes, estimate_memory, layer_matrix_weights
from engine.costs.params import LoraSpec, ParamReport, count_params
from engine.costs.trace import PRECISIONS, StepShape
from engine.errors import UserError
from engine.numbers import check_chunk_size, whole
from engine.validation import check, quote

METHODS = ("full", "lora")
HEADS = ("masked", "all")
TASKS = ("mlm", "classify")  # domain adaptation (MLM head) | sequence classification (pooler + classifier)
PRECISION_LABELS = {"fp32": "fp32", "fp16": "fp16 mixed", "bf16": "bf16 mixed", "bf16-pure": "pure bf16"}


@dataclass
class CostSettings:
    """Every input of the estimate; both methods are always estimated, `method` is highlighted."""

    model: str = "bert-base-uncased"
    task: str = "mlm"  # mlm | classify: the classify runs' model, LoRA with its head trained in full
    num_labels: int = 2  # classify only
    method: str = "lora"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] | str = field(default_factory=list)  # [] = the architecture's default
    modules_to_save: list[str] = field(default_factory=list)
    batch_size: int = 32
    seq_len: int = 128
    precision: str = "fp16"  # fp32 | fp16 | bf16 (mixed) | bf16-pure
    optimizer: str = "adamw"  # adamw | adamw8bit | sgd
    grad_checkpointing: bool = False
    head: str = "masked"  # masked: head on masked rows only (our trainer) | all: every position
    mlm_probability: float = 0.15
    grad_accum_steps: int = 1
    gpu: str = DEFAULT_GPU
    gpu_memory_gib: float | str | None = None  # None keeps the preset's figure
    gpu_tflops_16bit: float | str | None = None
    gpu_tflops_fp32: float | str | None = None
    gpu_price_per_hour: float | str | None = None
    corpus_tokens: int | str = 0  # tokens per epoch (0: no time or money)
    epochs: float = 3.0
    utilisation: float | None = None  # None: DEFAULT_UTILISATION, or the calibration run's
    calibration_run: str = ""
    device: str = "cuda"  # cuda for the GPU estimate; tests compare on cpu

    @classmethod
    def from_dict(cls, raw: dict) -> CostSettings:
        if not isinstance(raw, dict):
            raise UserError(f"Estimate settings must be an object of fields, got {quote(raw)}.")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise UserError(f"Unknown estimate setting(s): {', '.join(sorted(str(u)[:40] for u in unknown)[:5])}.")
        return cls(**raw).validated()

    def validated(self) -> CostSettings:
        for name in ("model", "task", "method", "precision", "optimizer", "head", "gpu", "calibration_run", "device"):
            setattr(self, name, check(getattr(self, name), "str", name.replace("_", " ").capitalize()))
        self.grad_checkpointing = check(self.grad_checkpointing, "bool", "Gradient checkpointing")
        self.lora_r = _whole("LoRA rank r", self.lora_r, 4096)
        self.num_labels = _whole("Number of labels", self.num_labels, 100_000)
        self.batch_size = _whole("Batch size", self.batch_size, 65_536)
        self.seq_len = check_chunk_size(_real("Sequence length", self.seq_len), label="Sequence length")
        self.grad_accum_steps = _whole("Gradient accumulation steps", self.grad_accum_steps, 1_000_000)
        self.corpus_tokens = _whole("Corpus tokens", self.corpus_tokens or 0, 10**15)
        self.lora_alpha = _real("LoRA alpha", self.lora_alpha)
        self.lora_dropout = _real("LoRA dropout", self.lora_dropout)
        self.mlm_probability = _real("Masking probability", self.mlm_probability)
        self.epochs = _real("Epochs", self.epochs, 1_000_000)
        for name in ("gpu_memory_gib", "gpu_tflops_16bit", "gpu_tflops_fp32", "gpu_price_per_hour"):
            value = getattr(self, name)  # None or "" keeps the preset's figure
            if value not in (None, ""):
                label = name.replace("_", " ").replace("tflops 16bit", "16-bit TFLOPS")
                setattr(self, name, _real(label.replace("tflops fp32", "FP32 TFLOPS").replace("gpu", "GPU", 1),
                                          value, 1e6))
        if self.utilisation not in (None, ""):
            self.utilisation = _real("Utilisation", self.utilisation)
        else:
            self.utilisation = None
        self.lora_targets = _names(self.lora_targets, allow_all=True)
        self.modules_to_save = _names(self.modules_to_save)
        checks = [
            (self.task in TASKS, f"Task must be one of {TASKS}, got {self.task!r}."),
            (self.num_labels >= 2, f"A classifier needs at least 2 labels, got {self.num_labels}."),
            (self.method in METHODS, f"Method must be one of {METHODS}, got {self.method!r}."),
            (self.precision in PRECISIONS, f"Precision must be one of {PRECISIONS}, got {self.precision!r}."),
            (self.optimizer in OPTIMIZERS, f"Optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}."),
            (self.head in HEADS, f"MLM head must be 'masked' or 'all', got {self.head!r}."),
            (self.batch_size >= 1, f"Batch size must be at least 1, got {self.batch_size}."),
            (self.lora_r >= 1, f"LoRA rank r must be at least 1, got {self.lora_r}."),
            (0 < self.mlm_probability < 1, f"Masking probability must be between 0 and 1, got {self.mlm_probability}."),
            (self.grad_accum_steps >= 1, "Gradient accumulation steps must be at least 1."),
            (self.corpus_tokens >= 0, f"Corpus tokens cannot be negative, got {self.corpus_tokens}."),
            (self.epochs > 0, f"Epochs must be above 0, got {self.epochs}."),
            (self.utilisation is None or 0 < self.utilisation <= 1,
             f"Utilisation must be a share of the GPU's peak between 0 and 1, got {self.utilisation}."),
            (self.device in ("cuda", "cpu"), f"Device must be cuda or cpu, got {self.device!r}."),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self

    def lora_spec(self) -> LoraSpec:
        targets = self.lora_targets if self.lora_targets == ALL_LINEAR else tuple(self.lora_targets)
        return LoraSpec(self.lora_r, self.lora_alpha, self.lora_dropout, targets, tuple(self.modules_to_save))

    def gpu_preset(self) -> GpuPreset:
        return preset(self.gpu).edited(memory_gib=self.gpu_memory_gib, tflops_16bit=self.gpu_tflops_16bit,
                                       tflops_fp32=self.gpu_tflops_fp32, price_per_hour=self.gpu_price_per_hour)

    @property
    def labels(self) -> int:
        """num_labels for a classifier, 0 for the MLM (what count_params and StepShape take)."""
        return self.num_labels if self.task == "classify" else 0

    def step_shape(self) -> StepShape:
        if self.labels:  # one [CLS] row per sequence reaches the head; every sequence is max length
            return StepShape(self.batch_size, self.seq_len, self.batch_size, False, self.precision, self.device,
                             self.grad_checkpointing, self.labels)
        rows = self.batch_size * self.seq_len
        masked = max(1, round(rows * self.mlm_probability))
        return StepShape(self.batch_size, self.seq_len, masked, self.head == "all", self.precision,
                         self.device, self.grad_checkpointing)


def _whole(label: str, value, maximum: float | None = None) -> int:
    # Text that is no number at all is "not a number"; 1.5 is "not a whole number".
    return whole(_real(label, value, maximum), label)


def _real(label: str, value, maximum: float | None = None) -> float:
    """A finite number of bounded size (engine.validation): no bool, no 1e300 that overflows later."""
    return check(value, "float", label, maximum=maximum)


def _names(value, allow_all: bool = False) -> list[str] | str:
    if isinstance(value, str):
        if allow_all and value.strip() in (ALL_LINEAR, "all linear layers"):
            return ALL_LINEAR
        value = value.split(",")
    return [str(v).strip() for v in (value or []) if str(v).strip()]


# ---------------------------------------------------------------- the estimate


def _one_side(s: CostSettings, gpu: GpuPreset) -> dict:
    """The estimate of one run's own settings at the default utilisation (what calibration compares)."""
    side, _ = method_estimate(load_arch(s.model), s, s.method, gpu, DEFAULT_UTILISATION, "default")
    return side


def estimate(settings: CostSettings) -> dict:
    """The whole estimate as plain JSON-able values (see docs/costs.md for every field)."""
    s = settings.validated()
    arch = load_arch(s.model)
    check_seq(arch, s.seq_len)
    gpu = s.gpu_preset()
    calibration = None
    if s.calibration_run and s.task == "mlm":  # the runs it reads are MLM runs: another step than a classifier's
        calibration = calibrate(s.calibration_run, s, gpu, lambda run_s: _one_side(run_s, gpu))
    utilisation, source = s.utilisation, "typed"
    if utilisation is None and calibration and calibration.get("utilisation_applies"):
        utilisation, source = calibration["implied_utilisation"], f"measured by run {s.calibration_run}"
    if utilisation is None:
        utilisation, source = DEFAULT_UTILISATION, "default"
    sides, reports = {}, {}
    for method in METHODS:
        sides[method], reports[method] = method_estimate(arch, s, method, gpu, utilisation, source)
    return {
        "model": arch.info(),
        "settings": {k: v for k, v in asdict(s).items() if not k.startswith("gpu_")},
        "gpu": gpu.as_dict(),
        "selected": s.method,
        "full": sides["full"],
        "lora": sides["lora"],
        "reduction": reduction(reports["lora"]),
        "calibration": calibration,
        "notes": notes(s, arch, source),
    }


def check_seq(arch: Arch, seq_len: int) -> None:
    check_chunk_size(seq_len, arch.max_length, "Sequence length", arch.name)


def method_estimate(arch: Arch, s: CostSettings, method: str, gpu: GpuPreset, utilisation: float,
                    source: str) -> tuple[dict, ParamReport]:
    shape = s.step_shape()
    params = count_params(arch, method, s.lora_spec(), s.labels)
    trace = trace_step(arch, params, shape, s.lora_dropout if method == "lora" else 0.0)
    memory = estimate_memory(trace, params, shape, arch.layers, s.optimizer, s.grad_accum_steps, s.device,
                             layer_matrix_weights(arch.hidden, arch.intermediate))
    flops = estimate_flops(trace, arch, shape, int(s.corpus_tokens))
    time = estimate_time(flops, gpu, s.precision, utilisation, s.epochs, source)
    side = {
        "method": method,
        "params": {"total": params.total, "trainable": params.trainable,
                   "trainable_percent": 100 * params.share, "adapter": params.adapter_params},
        "memory": {**memory.as_dict(), "gpu_memory": gpu.memory_bytes, "fits": memory.total <= gpu.memory_bytes},
        "checkpoint": checkpoint_bytes(params, shape, memory.optimizer),
        "flops": flops.as_dict(),
        "time": time.as_dict() if s.corpus_tokens else None,
    }
    return side, params


def reduction(params: ParamReport) -> dict:
    """The textbook's r(d+k)/(d·k), per distinct matrix shape, and over all targeted layers."""
    rows = {}
    for name, (k, d, r) in params.lora_modules.items():  # peft: A is r x k (in), B is d (out) x r
        key = (d, k, r)
        row = rows.setdefault(key, {"examples": [], "d": d, "k": k, "r": r, "count": 0})
        row["count"] += 1
        short = re.sub(r"^.*\.layers?\.\d+\.", "", name)  # attention.self.query, attn.Wqkv, ...
        if short not in row["examples"]:
            row["examples"].append(short)
    per_shape = []
    for (d, k, r), row in rows.items():
        row["examples"] = ", ".join(row["examples"])
        ratio = r * (d + k) / (d * k)
        row.update(lora_params=r * (d + k), weights=d * k, percent=100 * ratio,
                   text=f"r(d+k)/(d·k) = {r}×({d}+{k})/({d}×{k}) = {r * (d + k):,}/{d * k:,} = {100 * ratio:.2f}%")
        per_shape.append(row)
    lora_params = sum(r * (d + k) for k, d, r in params.lora_modules.values())
    percent = 100 * lora_params / params.targeted_weights if params.targeted_weights else 0.0
    return {
        "per_shape": per_shape,
        "lora_params": lora_params,
        "targeted_weights": params.targeted_weights,
        "percent_of_targeted": percent,
        "text": f"{lora_params:,} LoRA parameters / {params.targeted_weights:,} weights in the targeted layers "
                f"= {percent:.2f}%",
    }


def notes(s: CostSettings, arch: Arch, utilisation_source: str) -> list[str]:
    out = [
        "Parameters, gradients and optimizer state are exact; activations follow PyTorch's "
        "save-for-backward rules op by op (checked on CPU against saved_tensors_hooks).",
        "GPU kernels assumed: fused scaled-dot-product attention (no seq x seq matrices kept) and "
        "1-byte dropout masks; framework overhead is a CUDA context of 512 MiB plus 5% allocator slack.",
        f"Margin: {MARGIN_REASON}.",
        *task_notes(s, arch),
        f"Utilisation: {utilisation_source}.",
    ]
    if arch.note:
        out.append(arch.note)
    if s.optimizer == "adamw8bit":
        out.append("8-bit AdamW needs the bitsandbytes package, which is not installed here.")
    return out


def task_notes(s: CostSettings, arch: Arch) -> list[str]:
    if s.task == "classify":
        from engine.architectures import classifier_head

        skipped = ["Calibration skipped: the calibration runs are MLM runs, a different step."] \
            if s.calibration_run else []
        pooled = ("the sequence is pooled (its config's classifier_pooling: [CLS] or the mean) and goes through "
                  "the head (dense, GELU, norm)" if arch.family == "modernbert" else
                  "the [CLS] row goes through the pooler (DistilBERT: pre_classifier)")
        saved = s.modules_to_save or " + ".join(classifier_head(arch.model_type))
        return [f"Sequence classification ({s.num_labels} labels): no MLM head and no vocabulary projection; "
                f"{pooled} and the classifier, and the loss is over the labels. Activations assume every sequence "
                "is padded to the maximum length.",
                f"LoRA trains the classifier head in full next to the adapters (peft SEQ_CLS, modules_to_save "
                f"{saved}, as the Classify runs do): its weights add to the LoRA-only count.", *skipped]
    return ["The MLM head sees "
            + ("every position." if s.head == "all" else f"the masked {s.mlm_probability:.0%} of positions.")]


def bundled_corpus_tokens(source: str = "imdb", seq_len: int = 128) -> dict:
    """Training tokens per epoch of a bundled corpus, chunked as the trainer chunks it.

    Uses the bundled model's tokenizer (the bert-base-uncased WordPiece vocabulary, also
    DistilBERT's); RoBERTa's byte-level BPE gives somewhat fewer tokens for the same text.
    Any stored corpus works too (`source` is then its id, engine.data.store).
    """
    from engine.data import store
    from engine.data.corpus import BUNDLED_SOURCES, CorpusConfig, prepare
    from engine.models import BUNDLED, cached_tokenizer

    try:
        meta = store.get(source)
    except UserError:
        try:
            store.check_id(source)
        except UserError:  # not even an id's shape: the user meant a bundled corpus by name
            raise UserError(f"Unknown bundled corpus {quote(source)}: use imdb, rotten_tomatoes or a stored "
                            "corpus id (`/list_corpora`).") from None
        raise
    cfg = (CorpusConfig(source=meta.corpus_id) if meta.corpus_id in BUNDLED_SOURCES
           else CorpusConfig(source="stored", corpus_id=meta.corpus_id))
    seq = _whole("Sequence length", seq_len)
    prepared = prepare(cfg, cached_tokenizer(BUNDLED), chunk_size=seq, max_length=max(seq, 512))
    train = prepared.stats["train"]
    return {
        "source": source, "seq_len": seq, "chunks": train.chunks, "tokens": train.chunks * seq,
        "note": f"{meta.name}, train split: {train.chunks:,} chunks of {seq} tokens. "
                f"The course trains on 10,000 of them ({10_000 * seq:,} tokens per epoch).",
    }
