"""The OpenAI-compatible API under /v1: the models, and chat completions whole or streamed, stateless."""
