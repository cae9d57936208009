"""The Costs tab's public endpoint, /estimate, through gradio_client against the real app."""

from __future__ import annotations

import pytest

GOOD = dict(model="bert-base-uncased", lora_r=8, lora_alpha=16, lora_dropout=0.05, targets="query, value",
            modules_to_save="", batch_size=32, seq_len=128, precision="fp16", optimizer="adamw",
            grad_checkpointing=False, head="masked", mlm_probability=0.15, gpu="NVIDIA A100 (40 GB)",
            gpu_memory_gib="", tflops_16bit="", tflops_fp32="", price_per_hour="", corpus_tokens="1,280,000",
            epochs=3, utilisation="", calibration_run="")


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
