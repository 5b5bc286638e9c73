"""The central collector: pull windows and results from many sites and serve them.

Owns `dcmeter central …` (central_cli.py), its configuration (central_config.py), the
puller (central_pull.py), its own store (central_store.py) and its API (central_api.py).
The top room of the collector: may import commands/ (tokens), web/ (auth), config.py,
storage/, evaluation/ and the shared base.
"""
