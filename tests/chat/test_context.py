from app.chat.context import (MESSAGE_OVERHEAD_TOKENS, PastMessage, build_prompt, estimate_tokens,
                              history_limit, message_tokens)


def test_estimate_is_about_four_characters_per_token():
    assert [estimate_tokens(text) for text in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]
    assert message_tokens("abcd") == 1 + MESSAGE_OVERHEAD_TOKENS


def history(count, size=40):
    """`count` past messages, newest first, each costing size/4 + overhead tokens."""
    roles = ("user", "assistant")
    return [PastMessage(roles[i % 2], f"{i:03d}".ljust(size, ".")) for i in reversed(range(count))]


def test_keeps_the_newest_messages_that_fit_oldest_first():
    cost = message_tokens("x" * 40)  # 14
    fixed = message_tokens("sys") + message_tokens("new")
    budget = fixed + 3 * cost + cost // 2

    prompt = build_prompt(system_prompt="sys", recent_first=history(200),
                          user_content="new", budget=budget)

    assert prompt[0] == {"role": "system", "content": "sys"}
    assert prompt[-1] == {"role": "user", "content": "new"}
    assert [message["content"][:3] for message in prompt[1:-1]] == ["197", "198", "199"]


def test_everything_fits_in_a_large_budget():
    prompt = build_prompt(system_prompt=None, recent_first=history(5), user_content="q", budget=4000)

    assert [message["content"][:3] for message in prompt[:-1]] == ["000", "001", "002", "003", "004"]
    assert prompt[0]["role"] == "user" and prompt[1]["role"] == "assistant"


def test_history_is_cut_at_the_first_message_that_does_not_fit():
    past = [PastMessage("assistant", "short"), PastMessage("user", "x" * 4000), PastMessage("assistant", "tiny")]

    prompt = build_prompt(system_prompt=None, recent_first=past, user_content="q", budget=100)

    assert [message["content"] for message in prompt] == ["short", "q"]


def test_system_prompt_and_new_message_are_kept_even_over_budget():
    system = "s" * 1000

    prompt = build_prompt(system_prompt=system, recent_first=history(3), user_content="u" * 1000, budget=50)

    assert prompt == [{"role": "system", "content": system}, {"role": "user", "content": "u" * 1000}]


def test_history_limit_bounds_how_many_messages_can_fit():
    budget = 4000
    assert history_limit(budget) * MESSAGE_OVERHEAD_TOKENS > budget
