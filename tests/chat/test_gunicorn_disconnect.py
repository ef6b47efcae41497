"""A client leaving a stream, against the real server, as deployed."""
import time

import pytest

from bench.fake_model import Script
from tests.support.gateway import gateway, logged_in
from tests.support.servers import wait_until


@pytest.mark.slow
def test_leaving_mid_stream_closes_upstream_within_a_second_and_stores_the_partial_reply(
        tmp_path, database_url, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(400)], token_delay=0.05)
    with gateway(tmp_path, fake_llm, database_url=database_url, workers=1, env={"LOG_LEVEL": "WARNING"}) as server:
        http = logged_in(server)
        conversation = http.conversation(title="leaving")

        events = http.stream_events(conversation, "count slowly", limit=2)  # then leaves: the connection closes
        left = time.monotonic()

        assert [event["token"] for event in events] == ["t0 ", "t1 "]
        assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1.5), server.log()
        assert fake_llm.last_request.client_closed_at - left < 1
        assert fake_llm.last_request.tokens_sent < 400

        def partial_reply():
            return next((m for m in http.messages(conversation) if m["role"] == "ASSISTANT"), None)

        reply = wait_until(partial_reply, timeout=5, what="the partial reply")
        assert reply["content"].startswith("t0 t1 ")
        assert reply["meta"]["partial"] is True and reply["meta"]["reason"] == "client_disconnect"
