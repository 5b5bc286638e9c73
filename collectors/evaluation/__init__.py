"""The standard's formulas as pure functions over plain data: no I/O, no database.

Every indicator, level, uncertainty and verdict of T/CECA-G 0355—2025 and GB 40879, each
function citing its clause. Reads the site file (site*.py) and JSON lines (jsonl.py) as
plain data. Imports nothing of the collector's other rooms, nothing of the agent, and no
database, HTTP or socket module; only the shared base's config loading (dcmeter.base).
"""
