"""The collector: verifies and stores batches, and evaluates measurement windows.

Its rooms, top to bottom (each imports only rooms below it; docs/architecture.md):
central/ (the head office's puller), commands/ (`dcmeter collector …`), web/ (the HTTP
API, its auth and limits), results/ (a window's current and frozen result), reporting/ and
intake/ (the report; batch verification), config.py, storage/ (the database), and
evaluation/ (the standard's formulas, pure). From the agent it imports only the wire
format (dcmeter.agent.wire, samples, pubkey); below that, the shared base (dcmeter.base).
"""
