"""The `nvml` source against a real NVIDIA driver, beside `nvidia-smi` (a device check).

Reads every GPU with dcmeter's NvmlSource once a second for `--seconds`, loading the GPUs
with a matrix product (PyTorch, if present) in the middle third, and beside each read asks
`nvidia-smi --query-gpu` for the same quantities. Prints per GPU: the power each reports
(the 1 s average field 185 against nvidia-smi's power.draw.average, the instantaneous field
186 against power.draw.instant), utilisation, and the total-energy counter's increase against
the integral of the 1 s average power over the same span. Writes every row as JSON to
`--out`. Not part of the test suite: it needs a GPU (README, docs/sources.md).

    python bench/nvml_real.py --seconds 45 --out nvml_real.json
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcmeter.agent.sources.nvml import NvmlConfig, NvmlSource

SMI_FIELDS = (
    "index,uuid,name,driver_version,power.draw,power.draw.average,power.draw.instant,"
    "utilization.gpu,utilization.memory,power.limit"
)


def smi() -> dict[str, dict[str, str]]:
    """nvidia-smi's view of every GPU, by UUID."""
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    names = SMI_FIELDS.split(",")
    rows = [dict(zip(names, (v.strip() for v in line.split(",")), strict=True))
            for line in out.strip().splitlines()]
    return {r["uuid"]: r for r in rows}


def load(stop: threading.Event) -> str:
    """Keep every GPU busy with bf16 matrix products until `stop`; say what ran."""
    try:
        torch: Any = importlib.import_module("torch")
    except ImportError:
        return "no torch: GPUs left idle"
    if not torch.cuda.is_available():
        return "torch sees no GPU: left idle"
    mats = []
    for d in range(torch.cuda.device_count()):
        a = torch.randn(8192, 8192, device=f"cuda:{d}", dtype=torch.bfloat16)
        mats.append((a, a.clone()))
    while not stop.is_set():
        for a, b in mats:
            (a @ b).sum().item()
    return f"bf16 8192^3 matmul on {len(mats)} GPU(s)"


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=45)
    p.add_argument("--out", type=Path, default=Path("nvml_real.json"))
    args = p.parse_args()
    source = NvmlSource(NvmlConfig(id="gpus", type="nvml"))
    rows: list[dict[str, Any]] = []
    stop = threading.Event()
    worker: threading.Thread | None = None
    what: list[str] = []
    third = args.seconds // 3
    for i in range(args.seconds):
        if i == third:
            worker = threading.Thread(target=lambda: what.append(load(stop)), daemon=True)
            worker.start()
        if i == 2 * third:
            stop.set()
        t = time.time()
        readings = await source.read()
        view = smi()
        for r in readings:
            rows.append({"t": t, "metric": r.metric.name, "value": r.value,
                         "gpu": r.labels["gpu_uuid"], "smi": view.get(r.labels["gpu_uuid"], {})})
        await asyncio.sleep(max(0.0, 1.0 - (time.time() - t)))
    stop.set()
    if worker:
        worker.join(30)
    await source.close()
    args.out.write_text(json.dumps(rows))
    print(f"load: {what[0] if what else 'none'}; {len(rows)} readings")
    report(rows)
    return 0


def report(rows: list[dict[str, Any]]) -> None:
    """Print the comparison per GPU."""
    for gpu in sorted({r["gpu"] for r in rows}):
        mine = [r for r in rows if r["gpu"] == gpu]
        first = mine[0]["smi"]
        print(f"\n{gpu} {first.get('name')} driver {first.get('driver_version')}"
              f" power limit {first.get('power.limit')} W")
        pairs = {"gpu_power_w": "power.draw.average", "gpu_power_instant_w": "power.draw.instant",
                 "gpu_util_pct": "utilization.gpu", "gpu_mem_util_pct": "utilization.memory"}
        for metric, field in pairs.items():
            got = [(r["value"], _num(r["smi"].get(field))) for r in mine if r["metric"] == metric]
            both = [(a, b) for a, b in got if b is not None]
            if not got:
                print(f"  {metric:22s} not reported")
                continue
            diffs = [abs(a - b) for a, b in both]
            lo, hi = min(a for a, _ in got), max(a for a, _ in got)
            print(f"  {metric:22s} n={len(got)} range {lo:.2f}..{hi:.2f}; vs nvidia-smi {field}:"
                  f" max |diff| {max(diffs) if diffs else float('nan'):.2f}"
                  f" mean |diff| {sum(diffs) / len(diffs) if diffs else float('nan'):.2f}")
        energy = [(r["t"], r["value"]) for r in mine if r["metric"] == "gpu_energy_j"]
        power = [(r["t"], r["value"]) for r in mine if r["metric"] == "gpu_power_w"]
        if len(energy) > 1 and len(power) > 1:
            de = energy[-1][1] - energy[0][1]
            integral = sum((t1 - t0) * (p0 + p1) / 2
                           for (t0, p0), (t1, p1) in pairwise(power))
            span = energy[-1][0] - energy[0][0]
            print(f"  energy counter +{de:.1f} J over {span:.1f} s; integral of gpu_power_w"
                  f" {integral:.1f} J; ratio {de / integral if integral else float('nan'):.4f}")


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
