"""Batches in: verify a posted batch against the agent's enrolled keys and store it once.

Owns the batch check (ingest.py: size, envelope, signature, sequence, every refusal with a
precise status) and the keyring (agent_keys.py: which key verifies which seq, rotations).
May import storage/, evaluation/, config.py, the agent's wire format and the shared base.
"""
