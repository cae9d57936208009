"""engine.compare.side_by_side and engine.compare.model_cache on hand-built run folders (tests/run_builders.py)."""

from __future__ import annotations

import os
import shutil

import pytest
from run_builders import FAILED, LORA_A, LORA_B, RUNNING, TRAINED, build_runs

from engine.compare import side_by_side as cmp
from engine.compare.model_cache import ModelCache, cache_cap
from engine.errors import UserError

GREAT = "this is a great [MASK]."


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, tokenizer):
    """A runs folder of its own for this module (runs_dir() reads MLM_RUNS_DIR on every call)."""
    root = tmp_path_factory.mktemp("compare-runs")
    old = os.environ.get("MLM_RUNS_DIR")
    os.environ["MLM_RUNS_DIR"] = str(root)
    build_runs(root, tiny_model_dir, tokenizer, tmp_path_factory.mktemp("compare-work"))
    yield root
    if old is None:
        os.environ.pop("MLM_RUNS_DIR", None)
    else:
        os.environ["MLM_RUNS_DIR"] = old


@pytest.fixture
def cache():
    return ModelCache(cap=4)


def test_only_completed_runs_with_a_final_model_are_listed(runs):
    ids = [e.run_id for e in cmp.list_runs()]
    assert set(ids) == {TRAINED, LORA_A, LORA_B}
    assert cmp.run_choices()[0] == ("base model", cmp.BASE)


def test_trained_run_moves_towards_its_domain(runs, tiny_model_dir, cache):
    result = cmp.compare([cmp.BASE, TRAINED], GREAT, top_k=5, base_ref=tiny_model_dir, cache=cache)
    base, trained = result.columns
    assert trained.result.masks[0][0].token == "movie"
    assert base.result.masks[0][0].token != "movie"
    assert base.moves == []  # the base is the reference
    top_move = max(trained.moves, key=lambda m: m.change)
    assert top_move.token == "movie" and top_move.change > 0.1 and top_move.p_base < 0.01
    frame = result.moves_frame()
    assert set(frame["model"]) == {trained.label}
    assert all(abs(m.change) >= cmp.MIN_MOVE for m in trained.moves)


def test_base_is_loaded_for_moves_even_when_not_shown(runs, tiny_model_dir, cache):
    result = cmp.compare([TRAINED], GREAT, base_ref=tiny_model_dir, cache=cache)
    assert [c.name for c in result.columns] == [TRAINED] and result.columns[0].moves


def test_lora_columns_share_the_base_weights(runs, tiny_model_dir, cache):
    result = cmp.compare([cmp.BASE, LORA_A, LORA_B], GREAT, base_ref=tiny_model_dir, cache=cache)
    views = [cache.get(tiny_model_dir)] + [cache.get(str(runs / r / "final")) for r in (LORA_A, LORA_B)]
    assert views[1].slot is views[0].slot is views[2].slot
    pointers = set()
    for view in views:
        with cache.activate(view) as model:
            inner = model.get_base_model() if hasattr(model, "get_base_model") else model
            pointers.add(inner.bert.embeddings.word_embeddings.weight.data_ptr())
            pointers.add(inner.bert.encoder.layer[0].attention.self.query.base_layer.weight.data_ptr())
    assert len(pointers) == 2  # one embedding matrix, one query weight: no copy per adapter
    base_bytes = views[0].memory_bytes
    assert all(0 < v.memory_bytes < base_bytes / 20 for v in views[1:])
    probs = [[p.probability for p in c.result.masks[0]] for c in result.columns]
    assert probs[0] != probs[1] and probs[1] != probs[2]  # each column really ran its own adapter


def test_lru_eviction_drops_the_least_recently_used(runs, tiny_model_dir):
    cache = ModelCache(cap=2)
    a, b = str(runs / LORA_A / "final"), str(runs / LORA_B / "final")
    va = cache.get(a)
    cache.get(b)
    cache.get(a)  # touch A: B is now the oldest
    cache.get(str(runs / TRAINED / "final"))
    keys = cache.keys()
    assert len(keys) == 2 and any(a in k for k in keys) and not any(b in k for k in keys)
    assert va.slot.adapters == {va.adapter}  # B's adapter left the shared PeftModel
    cache.get(tiny_model_dir)  # evicts A, the last adapter: the LoRA layers are unloaded
    assert va.slot.peft is None and va.slot.adapters == set()
    assert "lora" not in str(type(va.slot.model.bert.encoder.layer[0].attention.self.query)).lower()


def test_reading_a_new_model_does_not_hold_up_models_in_memory(runs, tiny_model_dir, tiny_distilbert_dir,
                                                              monkeypatch):
    import threading

    from engine.compare import model_cache

    cache = ModelCache(cap=4)
    cache.get(tiny_model_dir)  # in memory
    reading, release = threading.Event(), threading.Event()
    real = model_cache._load_base

    def slow(src):  # a Hub download, held until the test lets it finish
        if src == tiny_distilbert_dir:
            reading.set()
            release.wait(30)
        return real(src)

    monkeypatch.setattr(model_cache, "_load_base", slow)
    slow_user = threading.Thread(target=lambda: cache.get(tiny_distilbert_dir))
    slow_user.start()
    assert reading.wait(10)
    done = []
    other_user = threading.Thread(
        target=lambda: done.append(cache.run_each([cmp.Spec(name=cmp.BASE, label="base", ref=tiny_model_dir)],
                                                  lambda model, tok: type(model).__name__)))
    other_user.start()
    other_user.join(10)
    finished_while_reading = not other_user.is_alive()
    release.set()
    slow_user.join(30)
    other_user.join(10)
    assert finished_while_reading and done == [["BertForMaskedLM"]]
    assert any(tiny_distilbert_dir in k for k in cache.keys())  # the slow one arrived too


def test_cache_cap_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLM_MODEL_CACHE", "7")
    assert cache_cap() == 7 and ModelCache().cap == 7
    monkeypatch.setenv("MLM_MODEL_CACHE", "lots")
    assert cache_cap() == 4


def test_memory_rows(runs, tiny_model_dir, cache):
    cmp.compare([LORA_A], GREAT, base_ref=tiny_model_dir, cache=cache)
    rows = {r["kind"]: r for r in cache.memory_rows()}
    assert 0 < rows["LoRA adapter"]["bytes"] < rows["full model"]["bytes"] / 20
    assert rows["LoRA adapter"]["memory"].endswith("KB") and rows["full model"]["memory"].endswith("MB")
    assert "shares the base weights" in rows["LoRA adapter"]["note"]


@pytest.mark.parametrize("names, message", [
    ([], "No model selected"),
    ([cmp.BASE, TRAINED, LORA_A, LORA_B, "20260101-000009-0000000000000fff"], "at most 4 fit side by side"),
    ([FAILED], f"Run {FAILED} failed: boom. Only completed runs can be compared."),
    ([RUNNING], f"Run {RUNNING} is still running \\(step 3\\): compare it once it has completed."),
    (["20260101-000009-0000000000000fff"], "not on this server \\(its folder was deleted"),
    (["../etc"], "is not a run id"),
])
def test_bad_model_choices(runs, names, message, cache):
    with pytest.raises(UserError, match=message):
        cmp.compare(names, GREAT, cache=cache)


def test_run_whose_final_model_was_deleted(runs, tmp_path, tiny_model_dir, cache):
    gone = "20260101-000005-0000000000000abc"
    shutil.copytree(runs / TRAINED, runs / gone)
    shutil.rmtree(runs / gone / "final")
    assert gone not in [e.run_id for e in cmp.list_runs()]
    with pytest.raises(UserError, match="final/ was deleted"):
        cmp.compare([gone], GREAT, base_ref=tiny_model_dir, cache=cache)


@pytest.mark.parametrize("text, message", [
    ("this is a great movie.", "No mask token found"),
    (" ".join(["[MASK]"] * 12), "at most 10"),
    ("", "Type a sentence"),
])
def test_bad_compare_text(runs, tiny_model_dir, cache, text, message):
    with pytest.raises(UserError, match=message):
        cmp.compare([cmp.BASE, TRAINED], text, base_ref=tiny_model_dir, cache=cache)


def test_prompt_table_and_csv(runs, tiny_model_dir, cache, tmp_path):
    prompts = "this is a great [MASK].\n\nI [MASK] this [MASK]."
    long = cmp.prompt_table([cmp.BASE, TRAINED], prompts, base_ref=tiny_model_dir, cache=cache)
    assert len(long) == 3 * 2  # (1 + 2 masks) x 2 models
    row = long[(long["model"].str.startswith(TRAINED)) & (long["mask"] == 1)].iloc[0]
    assert row["top1"] == "movie" and row["probability"] > 0.1
    wide = cmp.wide_prompt_table(long)
    assert len(wide) == 3 and any(c.startswith(TRAINED) for c in wide.columns)
    long.to_csv(tmp_path / "t.csv", index=False)
    assert (tmp_path / "t.csv").read_text().startswith("prompt,mask,model,top1,probability")


def test_prompt_without_mask_is_reported_and_the_rest_runs(runs, cache):
    long = cmp.prompt_table([cmp.BASE], "a [MASK]\nno mask here\nthe [MASK] end", cache=cache)
    assert list(long["prompt"]) == ["a [MASK]", "the [MASK] end"]
    assert len(long.attrs["skipped"]) == 1
    assert long.attrs["skipped"][0].startswith("Prompt 2 ('no mask here') skipped: No mask token found")
    with pytest.raises(UserError, match="No prompt in the list can be used. Prompt 1"):
        cmp.prompt_table([cmp.BASE], "no mask", cache=cache)
    with pytest.raises(UserError, match="prompt list is empty"):
        cmp.prompt_table([cmp.BASE], "\n \n", cache=cache)


def test_perplexity_on_the_runs_eval_set(runs, tiny_model_dir, cache):
    frame = cmp.perplexity_table([cmp.BASE, TRAINED, LORA_A], base_ref=tiny_model_dir, cache=cache)
    ppl = dict(zip(frame["model"].str.split(" ").str[0], frame["perplexity"]))
    assert ppl[TRAINED] < ppl["base:"]  # trained on the eval sentences' domain
    assert frame.attrs["eval_run"] == TRAINED and (frame["eval_chunks"] == 16).all()
    assert frame.loc[0, "recorded_before"] == 30000.0  # the base's "before" from summary.json


def test_perplexity_needs_a_run(runs, cache):
    with pytest.raises(UserError, match="needs a run's eval set"):
        cmp.perplexity_table([cmp.BASE], cache=cache)


@pytest.mark.parametrize("link", [
    cmp.CompareLink((TRAINED, LORA_A), "This is a great [MASK]."),
    cmp.CompareLink((cmp.BASE,), "a & b = c? 100% [MASK] / ünïcödé + more"),
    cmp.CompareLink((TRAINED,), ""),
])
def test_link_round_trips(link):
    url = cmp.build_link(link, "http://127.0.0.1:7860/?old=1")
    assert url.startswith("http://127.0.0.1:7860/?compare=")
    assert cmp.parse_link(url) == link


def test_link_without_compare_is_ignored():
    assert cmp.parse_link({"run": "x"}) is None and cmp.parse_link("http://h/?text=a") is None


def test_link_naming_unknown_runs(runs):
    link = cmp.parse_link({"compare": f"{TRAINED},nope,20990101-000000-0000000000000000", "text": "a [MASK]"})
    with pytest.raises(UserError, match="not on this server: nope, 20990101-000000-0000000000000000"):
        cmp.check_link(link)
    with pytest.raises(UserError, match="names no model"):
        cmp.check_link(cmp.CompareLink((), ""))
    cmp.check_link(cmp.CompareLink((cmp.BASE, TRAINED), "a [MASK]"))
