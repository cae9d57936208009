"""The app adapts to the Space hardware it runs on (engine.hardware.detect)."""

import gradio as gr


def _component(demo: gr.Blocks, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _build(monkeypatch, **env):
    for key in ("SPACE_ID", "SPACES_ZERO_GPU", "ACCELERATOR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import app

    return app.build_app()


def test_zerogpu_disables_start_and_offers_duplicate(monkeypatch):
    demo = _build(monkeypatch, SPACE_ID="someone/mlm-studio", SPACES_ZERO_GPU="true")
    assert _component(demo, "train-start").interactive is False
    notice = _component(demo, "train-disabled").value
    assert "disabled" in notice and "ZeroGPU" in notice
    assert any(isinstance(b, gr.DuplicateButton) for b in demo.blocks.values())


def test_cpu_space_shows_its_limits_and_allows_training(monkeypatch):
    demo = _build(monkeypatch, SPACE_ID="someone/mlm-studio", MLM_CPU_MAX_STEPS="123")
    assert _component(demo, "train-start").interactive is not False
    assert "123" in _component(demo, "train-limits").value


def test_local_machine_has_no_limits_notice(monkeypatch):
    demo = _build(monkeypatch)
    assert not any(getattr(b, "elem_id", None) in ("train-disabled", "train-limits") for b in demo.blocks.values())
