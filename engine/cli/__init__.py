"""`python -m engine prepare|train|estimate`: one module per command, each with main(argv)."""
