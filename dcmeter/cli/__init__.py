"""The command line: `dcmeter …` (main.py), the demo, and the commands that talk to a collector.

The top room: may import the agent, the collector, the simulator and the shared base;
nothing imports it. Owns the argument parsing and dispatch (main.py), the demo (demo.py),
the collector client (client.py), `dcmeter window|run|source …` and result printing
(render.py).
"""
