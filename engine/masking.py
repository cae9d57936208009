"""Masking through transformers' DataCollatorForLanguageModeling.

The collator already implements token-level 80/10/10 masking and whole-word masking
(from offset_mapping) with its own seeded generator; we only configure it.
"""

from __future__ import annotations

from transformers import DataCollatorForLanguageModeling


def make_collator(
    tokenizer,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = False,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    seed: int | None = None,
) -> DataCollatorForLanguageModeling:
    """The collator for these settings. Rows passed to it need input_ids and
    special_tokens_mask, plus offset_mapping for whole-word masking."""
    import warnings

    with warnings.catch_warnings():
        # whole-word masking in transformers always uses [MASK] (no random/keep); the UI says so.
        warnings.simplefilter("ignore", UserWarning)
        return DataCollatorForLanguageModeling(
            tokenizer=tokenizer,
            mlm=True,
            whole_word_mask=whole_word_mask,
            mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob,
            random_replace_prob=random_replace_prob,
            seed=seed,
        )
