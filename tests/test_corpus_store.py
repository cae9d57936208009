"""engine.data.store: stored corpora keyed by content, limits, restarts, runs that pin a corpus."""

from __future__ import annotations

import json

import pytest

from engine.data import store
from engine.data.corpus import CorpusConfig, load_corpus
from engine.errors import UserError

CLINICAL = "note,dx\n" + "\n".join(
    f'"Patient {i} reports gastroesophageal reflux and dyspepsia after meals.",{"gi" if i % 2 else "cardio"}'
    for i in range(40)
)


@pytest.fixture
def corpora(tmp_path, monkeypatch):
    monkeypatch.setenv("MLM_CORPORA_DIR", str(tmp_path / "corpora"))
    monkeypatch.setenv("MLM_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    return tmp_path


def upload(tmp_path, name="notes.csv", content=CLINICAL) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_same_content_and_columns_give_the_same_id(corpora):
    a = store.store_upload(upload(corpora, "a.csv"), "note", "dx")
    b = store.store_upload(upload(corpora, "b.csv"), "note", "dx")
    other_label = store.store_upload(upload(corpora, "a.csv"), "note", "")
    assert a.corpus_id == b.corpus_id and a.name == "a.csv"
    assert other_label.corpus_id != a.corpus_id and other_label.label_column == ""
    assert (a.rows, a.text_column, a.label_column) == (40, "note", "dx")
    assert [c.corpus_id for c in store.list_corpora()][:2] == ["imdb", "rotten_tomatoes"]
    assert {c.corpus_id for c in store.list_corpora()} >= {a.corpus_id, other_label.corpus_id}


def test_a_stored_corpus_loads_by_id_with_its_labels(corpora):
    meta = store.store_upload(upload(corpora), "note", "dx")
    dd = load_corpus(CorpusConfig(source="stored", corpus_id=meta.corpus_id, test_fraction=0.25, seed=1))
    assert len(dd["train"]) + len(dd["test"]) == 40
    assert set(dd["train"]["label"]) == {"gi", "cardio"}
    assert "gastroesophageal" in dd["test"]["text"][0]


def test_bundled_corpora_are_listed_and_load_by_their_id(corpora):
    dd = load_corpus(CorpusConfig(source="stored", corpus_id="rotten_tomatoes", max_docs=20))
    assert len(dd["train"]) + len(dd["test"]) == 20
    assert store.get("imdb").origin == "bundled"
    with pytest.raises(UserError, match="cannot be removed"):
        store.remove("imdb")


def test_it_survives_a_restart_since_everything_is_on_disk(corpora):
    meta = store.store_upload(upload(corpora), "note", "dx", name="Clinic notes")
    on_disk = json.loads((corpora / "corpora" / meta.corpus_id / "meta.json").read_text())
    assert on_disk["name"] == "Clinic notes"
    # a new process knows nothing but the folder: read it back through a fresh listing
    assert store.get(meta.corpus_id).name == "Clinic notes"


@pytest.mark.parametrize("bad", ["../etc", "0123456789abcdef/..", "/tmp/x", "", "A" * 10_000, 5, None, {"a": 1}])
def test_ids_that_are_not_ids_are_refused_without_echoing_them_whole(corpora, bad):
    with pytest.raises(UserError) as err:
        store.get(bad)
    assert len(str(err.value)) < 200


def test_an_unknown_id_says_so(corpora):
    with pytest.raises(UserError, match="No stored corpus"):
        store.get("0123456789abcdef")


def test_names_are_cleaned_and_bounded(corpora):
    meta = store.store_upload(upload(corpora), "note", "dx")
    renamed = store.rename(meta.corpus_id, "<script>alert(1)</script>\x00\x07 notes\n" + "x" * 10_000)
    assert len(renamed.name) <= store.NAME_MAX
    assert "\x00" not in renamed.name and "\n" not in renamed.name
    assert renamed.name.startswith("<script>")  # kept as text: the UI escapes it when shown
    assert store.rename(meta.corpus_id, " \x00 ").name == renamed.name  # an empty name keeps the old one


def test_least_recently_used_goes_first_but_never_one_a_run_needs(corpora, monkeypatch):
    monkeypatch.setenv("MLM_MAX_CORPORA", "2")
    first = store.store_upload(upload(corpora, "1.csv", CLINICAL.replace("reflux", "ulcer")), "note", "dx")
    second = store.store_upload(upload(corpora, "2.csv", CLINICAL.replace("reflux", "colitis")), "note", "dx")
    run = corpora / "runs" / "20260101-000000-0123456789abcdef"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"corpus": {"source": "stored", "corpus_id": first.corpus_id}}))
    third = store.store_upload(upload(corpora, "3.csv", CLINICAL.replace("reflux", "gastritis")), "note", "dx")
    ids = {c.corpus_id for c in store.list_corpora()}
    assert first.corpus_id in ids and third.corpus_id in ids and second.corpus_id not in ids
    with pytest.raises(UserError, match="used by a run"):
        store.remove(first.corpus_id)
    # every stored corpus pinned by a run: a new one is refused with the limit named, nothing is removed
    (run / "config.json").write_text(json.dumps({"corpus": {"source": "stored", "corpus_id": first.corpus_id}}))
    run2 = corpora / "runs" / "20260101-000001-0123456789abcdef"
    run2.mkdir()
    (run2 / "config.json").write_text(json.dumps({"corpus": {"source": "stored", "corpus_id": third.corpus_id}}))
    with pytest.raises(UserError, match="MLM_MAX_CORPORA"):
        store.store_upload(upload(corpora, "4.csv", CLINICAL.replace("reflux", "hernia")), "note", "dx")
    assert {c.corpus_id for c in store.list_corpora()} >= {first.corpus_id, third.corpus_id}


def test_a_full_disk_says_so_and_leaves_no_partial_folder(corpora, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("datasets.Dataset.to_parquet", full)
    with pytest.raises(UserError, match="full: free space or set MLM_CORPORA_DIR"):
        store.store_upload(upload(corpora), "note", "dx")
    assert [p.name for p in (corpora / "corpora").iterdir()] == []


def test_a_half_written_folder_is_not_listed(corpora):
    (corpora / "corpora" / "0123456789abcdef").mkdir(parents=True)
    (corpora / "corpora" / "0123456789abcdef" / "meta.json").write_text("{not json")
    assert [c.origin for c in store.list_corpora()] == ["bundled", "bundled"]
