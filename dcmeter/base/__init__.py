"""The shared base: what the agent, the collector and the command line all use.

Owns configuration loading and its errors (configfile.py), structured logging (log.py),
rate-limited log lines (ratelimit.py), TLS for HTTP clients (tls.py) and systemd's
sd_notify (sdnotify.py). Imports no other part of dcmeter: everything points down to it.
"""
