"""summary.json of a classifier run, with the line that explains its trainable-parameter count."""

from __future__ import annotations

TEXTBOOK_LORA_TRAINABLE = 294_912  # bert-base: 12 layers x (query, value) x r 8 x (768 + 768)


def lora_note(model, trainable: int, info, cfg) -> str:
    """Why LoRA's trainable count here differs from the textbook's 294,912."""
    adapters = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    head = trainable - adapters
    return (
        f"LoRA trains {adapters:,} adapter weights ({info.layers} layers, hidden {info.hidden_size}, "
        f"r={cfg.lora_r}) plus the {head:,}-weight classifier head trained in full beside them; the textbook's "
        f"{TEXTBOOK_LORA_TRAINABLE:,} counts bert-base's adapters alone (12 layers, hidden 768, r=8)."
    )


def summary_of(run, step: int, stopped: bool) -> dict:
    cfg, evals = run.cfg, run.evals
    best = max(evals, key=lambda r: (r["accuracy"], r["step"]))
    rate = run.samples / run.train_seconds if run.train_seconds > 0 else 0.0
    note = (lora_note(run.model, run.trainable, run.info, cfg) if cfg.method == "lora"
            else "Full fine-tuning trains every weight of the encoder and the classifier head.")
    return {
        "kind": "classify", "method": cfg.method, "model": cfg.model, "model_type": run.info.model_type,
        "labels": run.labels, "n_train": len(run.train_features), "n_test": len(run.test_features),
        "steps": step, "total_steps": run.total, "epochs": run.epoch(step), "stopped": stopped,
        "learning_rate": cfg.learning_rate, "seed": cfg.seed,
        "best_eval": best, "last_eval": evals[-1],
        "accuracy": evals[-1]["accuracy"], "f1": evals[-1]["f1"],
        "trainable_params": run.trainable, "total_params": run.total_params, "trainable_note": note,
        "train_seconds": round(run.train_seconds, 3), "samples_per_s": round(rate, 2),
        "device": run.device.type,
    }
