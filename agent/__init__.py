"""The agent: the rack daemon that reads devices, buffers every sample and ships signed batches.

Owns the sources (sources/: one module per protocol, a source only reads), the aligned
scheduler, the durable buffer, the wire format (wire.py with wire_types.py and
wire_decode.py, samples.py, pubkey.py: the part the collector shares), the shipper, key
rotation and the daemon that ties them together.
May import the shared base (dcmeter.base) and nothing else of dcmeter: never the collector,
the simulator or the command line. Rooms and arrows: docs/architecture.md.
"""
