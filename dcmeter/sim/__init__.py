"""Simulated devices that speak real protocols on loopback, for tests and demonstrations."""
