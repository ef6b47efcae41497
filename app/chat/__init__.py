"""Chat completions: catalogue, providers, orchestration and the chat endpoints."""
