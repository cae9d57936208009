"""The Costs tab's public endpoint, /estimate, through gradio_client against the real app."""

from __future__ import annotations

import gradio as gr
import pytest

GOOD = dict(model="bert-base-uncased", lora_r=8, lora_alpha=16, lora_dropout=0.05, targets="query, value",
            modules_to_save="", batch_size=32, seq_len=128, precision="fp16", optimizer="adamw",
            grad_checkpointing=False, head="masked", mlm_probability=0.15, gpu="NVIDIA A100 (40 GB)",
            gpu_memory_gib="", tflops_16bit="", tflops_fp32="", price_per_hour="", corpus_tokens="1,280,000",
            epochs=3, utilisation="", calibration_run="", task="mlm")


def call(client, **changes):
    return client.predict(*{**GOOD, **changes}.values(), api_name="/estimate")


def test_estimate_endpoint_returns_the_textbook_numbers(client):
    result = call(client)
    assert result["lora"]["params"]["trainable"] == 294_912
    assert result["full"]["params"]["trainable"] == 109_514_298
    assert result["lora"]["memory"]["peak_allocated"] < result["full"]["memory"]["peak_allocated"]
    assert result["full"]["time"]["cost_per_epoch"] > result["lora"]["time"]["cost_per_epoch"] > 0
    textbook = call(client, lora_r=16, targets="query,key,value,attention.output.dense")
    assert "1,179,648" in textbook["reduction"]["text"] and "4.17%" in textbook["reduction"]["text"]


@pytest.mark.parametrize("changes,message", [
    ({"lora_r": 0}, "LoRA rank r must be at least 1, got 0"),
    ({"targets": "q_lin"}, "has no linear layer named 'q_lin'"),
    ({"batch_size": 0}, "Batch size must be at least 1, got 0"),
    ({"seq_len": 1024}, "above bert-base-uncased's maximum of 512 tokens"),
    ({"price_per_hour": "abc"}, "GPU price per hour must be a number, got 'abc'"),
    ({"model": "someone/no-such-model"}, "not available offline"),
])
def test_estimate_endpoint_explains_bad_input(client, changes, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(")):
        call(client, **changes)
    assert call(client)["lora"]["params"]["trainable"] == 294_912  # the server keeps serving


def test_corpus_tokens_come_from_the_dataset_tab_analysis(tokenizer):
    from components.costs import tokens_from_dataset_tab
    from engine.data.corpus import CorpusConfig
    from engine.data.stats import dataset_stats
    stats = {"corpus": "IMDb (bundled)", "model": {"ref": "tiny"},
             **dataset_stats(CorpusConfig(source="imdb", max_docs=120), tokenizer, 512, 64)}
    chunks = stats["chunks"]["train"]["chunks"]
    assert chunks > 0
    tokens, note = tokens_from_dataset_tab(stats, 64)
    assert tokens == f"{chunks * 64:,}" and "IMDb" in note and "consistent" not in note
    _, note = tokens_from_dataset_tab(stats, 128)  # the Costs sequence length differs from the chunk size
    assert "64-token chunks" in note and "128" in note
    with pytest.raises(gr.Error, match="Analyse corpus"):  # shown in the browser as an error toast
        tokens_from_dataset_tab(None, 128)


def test_summary_explains_gradients_missing_from_the_peak():
    from components.costs import side_by_side, summary_md
    from engine.costs.calculator import CostSettings, estimate

    e = estimate(CostSettings(model="bert-base-uncased", lora_r=8, lora_targets=["query", "value"],
                              batch_size=32, seq_len=128))
    memory = e["full"]["memory"]
    # Full fine-tuning of BERT-base peaks before most gradients exist; the summary says so.
    assert memory["parts"]["gradients"] < memory["gradients"]
    text = summary_md(e)
    assert f"the peak comes at *{memory['moment']}*" in text
    assert f"{memory['gradients'] / 1024**3:.3f} GiB of gradients" in text
    table = side_by_side(e).set_index("")
    assert table.loc["gradients (whole step)", "Full fine-tuning"] == f"{memory['gradients'] / 1024**3:.3f} GiB"
    assert "memory at the peak: gradients" in table.index


def test_estimate_parameters_are_the_form_dataclass_fields_in_order():
    """/estimate takes its inputs by name from EstimateRequest: its fields are the public parameters."""
    from dataclasses import fields

    from components.costs import EstimateRequest

    assert [f.name for f in fields(EstimateRequest)] == list(GOOD)
