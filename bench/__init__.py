"""The benchmarks, one package each (`python -m bench.<name>`), and what they share.

- concurrency: how many chats the gateway holds at once, per serving model.
- overhead: what the gateway adds on top of the model server, against its baselines.
- limits: what each limit (revocation, rate limits, stream and chat caps, budgets) costs per request.
- soak: mixed traffic and injected faults for a set time, then checks that nothing went quietly wrong.
- fake_model: the fake model server the benchmarks and the tests use (also runnable alone).
- common: the load client, the server launcher, scratch databases and the report writer.

Results go to bench/results/ as Markdown with JSON beside it.
"""
