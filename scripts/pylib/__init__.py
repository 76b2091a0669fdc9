"""Python helpers shared by cria's scripts and reference tests (numpy only)."""
