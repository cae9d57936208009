"""engine.compare.recall: finding shredded words in held-out text, ranking a whole word, the table."""

from __future__ import annotations

import pytest
import torch

from engine.compare import recall as wr
from engine.compare.model_cache import ModelCache
from engine.compare.side_by_side import BASE
from engine.errors import UserError


def test_occurrences_mask_every_piece_and_are_bounded(tokenizer):
    texts = ["Priyadarshan made it. A film by Priyadarshan, then Priyadarshan again.", "Nothing here."]
    cfg = wr.RecallConfig(max_per_word=2, window=16)
    found = wr.find_occurrences(texts, ["priyadarshan"], tokenizer, cfg)
    assert len(found) == 2  # the third occurrence is over max_per_word
    for o in found:
        assert len(o.pieces) > 1 and o.input_ids[0] == tokenizer.cls_token_id
        assert o.input_ids[o.start:o.start + len(o.pieces)] == o.pieces
        assert tokenizer.decode(o.pieces).replace(" ", "").replace("##", "") == "priyadarshan"
        assert len(o.input_ids) <= 16
    assert len(wr.find_occurrences(texts, ["priyadarshan"], tokenizer, wr.RecallConfig(max_occurrences=1))) == 1


def test_a_word_ranks_as_its_worst_piece(tokenizer, monkeypatch):
    (o,) = wr.find_occurrences(["Priyadarshan."], ["priyadarshan"], tokenizer, wr.RecallConfig())

    def logits(model, ids, attn, positions):  # first piece ranked 1st, every other piece 3rd
        out = torch.zeros(int(positions.sum()), tokenizer.vocab_size)
        for row, piece in enumerate(o.pieces):
            out[row, piece] = 10.0 if row == 0 else 5.0
            if row:
                out[row, [1, 2]] = 6.0
        return out

    monkeypatch.setattr(wr, "masked_logits", logits)
    scored = wr.score(torch.nn.Linear(1, 1), tokenizer, [o])
    assert scored["rank"].tolist() == [3] and scored["log_prob"].iloc[0] < 0
    row = wr.summarize("m", scored, head_trained=False)
    assert (row["top1"], row["top5"], row["mean_rank"]) == (0.0, 1.0, 3.0) and "untrained" in row["note"]


def test_recall_table_on_a_tiny_model(tiny_model_dir, small_corpus):
    cfg = wr.RecallConfig(top_words=20, max_occurrences=40)
    frame = wr.word_recall([BASE], small_corpus, tiny_model_dir, cfg, cache=ModelCache(1))
    row = frame.iloc[0]
    assert 0 < row["occurrences"] <= 40 and 0 <= row["top1"] <= row["top5"] <= 1 and row["mean_rank"] >= 1
    assert frame.attrs["words"]


def test_no_shredded_words_says_so(tiny_model_dir, small_corpus, monkeypatch):
    monkeypatch.setattr(wr, "shredded_words", lambda texts, tok, cfg: [])
    with pytest.raises(UserError, match="no recurring word"):
        wr.word_recall([BASE], small_corpus, tiny_model_dir, cache=ModelCache(1))


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="Max occurrences"):
        wr.RecallConfig(max_occurrences=0).validated()


def test_compare_section_scores_a_bundled_corpus(tiny_model_dir, monkeypatch):
    from components import word_recall as section

    assert section.corpus_config("imdb", 200).source == "imdb"
    assert ("imdb" in {cid for _, cid in section.corpus_choices()})
    monkeypatch.setattr(section, "word_recall", lambda names, corpus, ref, cfg: wr.word_recall(
        names, corpus, ref, cfg, cache=ModelCache(1)))
    frame, note = section.run_recall.__wrapped__([BASE], tiny_model_dir, "imdb", 1000, 50, 20)
    assert frame.iloc[0]["occurrences"] <= 20 and "Words scored" in note and "worst piece" in note
