"""Simulated devices that speak real protocols on loopback, for tests and demonstrations.

Meters (Modbus), BMCs (IPMI RMCP+), switches and storage (SNMP), and a whole site behind
them with its true energies (site.py). May import the agent's Modbus register profiles
(the same maps the agent reads with) and the shared base; never the collector.
"""
