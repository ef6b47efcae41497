"""Chat on conversations: a turn's prompt, the reply whole or streamed, what it cost in time; the chat routes.

The model catalogue and the providers are in app/llm."""
