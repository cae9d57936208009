"""MLM Studio: adapt a masked language model to your domain and see what it buys you.

`python app.py` serves http://127.0.0.1:7860 (PORT/GRADIO_SERVER_PORT to change it).
Offline (HF_HUB_OFFLINE=1 or no route to the Hub) it runs on the bundled corpus and model.
"""

from __future__ import annotations

import os

from engine.offline import ensure_mode

OFFLINE = ensure_mode()  # before anything imports transformers or datasets

import gradio as gr  # noqa: E402

from components import classify, compare, corpus_picker, costs, dataset, masking, training  # noqa: E402
from components.common import mode_banner  # noqa: E402
from engine import hardware  # noqa: E402
from engine.data import MAX_UPLOAD_MB, limits_text  # noqa: E402
from engine.run_folder import RunFolder, runs_dir, writable  # noqa: E402

TITLE = "MLM Studio"
# On a phone (one column) the Train tab's run status and charts come before its long form.
CSS = """
@media (max-width: 760px) {
  #train-layout { flex-direction: column-reverse !important; }
  #costs-table table { table-layout: fixed; width: 100% !important; }
}
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nDomain adaptation of masked language models: explore, mask, train, compare, price.")
        gr.Markdown(mode_banner(), elem_id="mode-banner")
        gr.Markdown(hardware.banner_markdown(hardware.detect()), elem_id="hardware-banner")
        gr.Markdown(storage_banner(), elem_id="storage-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Dataset", id="dataset"):
                corpus_stats = dataset.render()
            with gr.Tab("Masking", id="masking"):
                masking.render()
            with gr.Tab("Train", id="train"):
                training.render(demo)
            with gr.Tab("Classify", id="classify"):
                classify.render(demo)
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare.render(demo, compare_tab)
            with gr.Tab("Costs", id="costs"):
                costs.render(corpus_stats)
        corpus_picker.wire(demo, tabs)  # every tab's corpus list, re-read on load and on a tab change
        demo.load(tab_for_link, None, tabs, api_visibility="private", queue=False)
    return demo


def tab_for_link(request: gr.Request):
    """A shared link opens the tab it is for: ?run= the Train tab (the Classify tab for a classifier run),
    ?compare= the Compare tab."""
    params = getattr(request, "query_params", {}) or {}
    if params.get("run"):
        run = RunFolder.find(str(params["run"])[:64])
        return gr.Tabs(selected="classify" if run is not None and run.kind() == "classify" else "train")
    if params.get("compare"):
        return gr.Tabs(selected="compare")
    return gr.skip()


def storage_banner() -> str:
    """Says when runs cannot be written (every run is still shown, read-only), and the upload limits."""
    reason = writable(runs_dir())
    note = (f"**Runs are read-only**: {reason}. Every run on disk is shown, but new runs, cancel and "
            f"resume need a writable runs folder. " if reason else "")
    return note + limits_text()


def main() -> None:
    demo = build_app()
    port = int(os.environ.get("PORT", os.environ.get("GRADIO_SERVER_PORT", "7860")))
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    demo.queue(default_concurrency_limit=int(os.environ.get("MLM_CONCURRENCY", "4")))
    # show_error=False: a gr.Error (components.common.user_errors) still shows its plain message;
    # only raw exception text, which can name server paths, stays in the server's log.
    demo.launch(server_name=host, server_port=port, show_error=False, max_file_size=f"{MAX_UPLOAD_MB}mb",
                css=CSS)


if __name__ == "__main__":
    main()
