"""Admission control: whether a request may start now (rate limits, the stream and chat caps)."""
