"""The `nvml` source's device identity against a real NVIDIA driver, beside `nvidia-smi` (a
device check for the instrument list, issue 16).

Reads every GPU once with dcmeter's NvmlSource and prints the identity it reports
(`SourceInfo.device`: make, model, uuid, serial), then `nvidia-smi --query-gpu=index,name,
uuid,serial` for the same GPUs, and whether they agree: the model is the set of the GPUs'
names, the UUIDs and serials in the source's GPU order. Exits 1 on a disagreement. Not part
of the test suite: it needs a GPU (docs/sources.md).

    python bench/nvml_identity.py --out nvml_identity.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcmeter.agent.sources.nvml import NvmlConfig, NvmlSource


def smi() -> list[dict[str, str]]:
    """nvidia-smi's index, name, UUID and serial of every GPU, in index order."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,name,uuid,serial", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    rows = [dict(zip(("index", "name", "uuid", "serial"), (v.strip() for v in line.split(",")),
                     strict=True)) for line in out.strip().splitlines()]
    return sorted(rows, key=lambda r: int(r["index"]))


async def read_identity() -> dict[str, str]:
    """The device identity the source reports after its first read."""
    cfg = NvmlConfig.model_validate({"type": "nvml", "id": "gpus", "gpus": "all"})
    source = NvmlSource(cfg)
    try:
        readings = await source.read()
        print(f"nvml source: {len(readings)} readings on the first read")
        return dict(source.info.device)
    finally:
        await source.close()


def compare(device: dict[str, str], gpus: list[dict[str, str]]) -> list[str]:
    """What differs between the source's identity and nvidia-smi's (empty: they agree)."""
    faults = []
    if device.get("make") != "NVIDIA":
        faults.append(f"make {device.get('make')!r}, expected 'NVIDIA'")
    names = ", ".join(sorted({g["name"] for g in gpus}))
    if device.get("model") != names:
        faults.append(f"model {device.get('model')!r}, nvidia-smi names {names!r}")
    uuids = " ".join(g["uuid"] for g in gpus)
    if device.get("uuid") != uuids:
        faults.append(f"uuid {device.get('uuid')!r}, nvidia-smi {uuids!r}")
    serials = [g["serial"] for g in gpus]
    known = all(s and s not in ("[N/A]", "[Not Supported]") for s in serials)
    want = " ".join(serials) if known else None
    if device.get("serial") != want:
        faults.append(f"serial {device.get('serial')!r}, nvidia-smi {serials!r}")
    return faults


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    device = asyncio.run(read_identity())
    gpus = smi()
    print("source identity:", json.dumps(device, sort_keys=True))
    for g in gpus:
        print(f"nvidia-smi GPU {g['index']}: name {g['name']!r} uuid {g['uuid']} serial"
              f" {g['serial']!r}")
    faults = compare(device, gpus)
    print("agree" if not faults else "DIFFER: " + "; ".join(faults))
    if args.out:
        args.out.write_text(json.dumps({"source": device, "nvidia_smi": gpus,
                                        "faults": faults}, indent=2))
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
