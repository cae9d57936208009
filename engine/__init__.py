"""MLM Studio's ML core: corpus, masking, models, training, runs and costs.

Nothing under engine/ imports gradio: functions take and return plain values so the
same code serves the web UI, the `python -m engine` CLI and the tests.
"""
