"""`dcmeter collector …`: serve, enroll and verify, tokens.

Owns the collector's own commands (cli.py: serve; keys_cli.py: enroll, verify;
token_cli.py: tokens, shared with the central). The command line (dcmeter.cli) calls them.
May import every room of the collector below it (web/ and down) and the shared base.
"""
