"""`python -m bench.fake_model`: the fake model server alone, for a benchmark or to try the gateway without a model."""
from __future__ import annotations

import argparse

from .script import Script
from .server import FakeModelServer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_model", description="A fake Ollama and OpenAI-compatible model server on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--tokens", type=int, default=20, help="tokens per reply")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each reply takes, spread over its tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true", help="accept requests and never answer, as a stuck server")
    parser.add_argument("--no-usage", action="store_true", help="send no token counts")
    args = parser.parse_args(argv)
    script = Script.paced(args.tokens, args.seconds, first_token_delay=args.first_token_delay, hang=args.hang,
                          report_usage=not args.no_usage)
    # No request history: a benchmark sends hundreds of thousands; the counts are at GET /_fake/stats.
    fake = FakeModelServer(args.host, args.port, script, record=False)
    print(f"fake model server on {fake.url} (Ollama) and {fake.openai_url} (OpenAI-compatible)", flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
