"""Provenance by access mode on a finished distillation-lab run (issue 21): black box and open weights.

    .venv/bin/python bench/provenance_access.py --lab lab-out/distill

`cuirass lab distill` now audits every student both ways itself; this runs the same step
(`cuirass.lab.distill.audit.access_modes`) on a run's saved students and HTTP audit transcripts, so a run
made before it (or with other settings) can be measured without training again. Per student: the
black-box curve (Holm p of the whole family on the first n answers of its HTTP audit), the weights audit
(`audit_endpoint` on the model directory with the likelihood channel, `--queries` probes) and its curve,
and on each the check with 20 keys that never marked anything. Writes `access.json` in the run's folder
and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cuirass.keyring import Keyring
from cuirass.lab.distill import audit
from cuirass.lab.distill.report import access_table
from cuirass.lab.distill.run import master_secret

GATEWAY = {"A": "plain", "B": "defended", "D": "defended", "E": "stealth", audit.CONTROL: "plain"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", type=Path, default=Path("lab-out/distill"))
    ap.add_argument("--queries", type=int, default=200, help="probes of each weights audit")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = json.loads((args.lab / "results.json").read_text())
    cfg = results["config"]
    keyring = Keyring(master_secret(cfg["seed"]).encode())
    teacher = str(args.lab / "models" / "teacher")
    names = [*results["conditions"], audit.CONTROL]
    access: dict[str, Any] = {}
    for name in names:
        slug = name.replace(":", "-")
        gw = args.lab / f"gateway-{GATEWAY.get(name, 'plain')}"
        http = json.loads((args.lab / "audit" / f"audit-{slug}.json").read_text())
        probes = [a["prompt"] for a in http["transcripts"]["suspect"]]
        s0 = time.perf_counter()
        access[name] = audit.access_modes(
            audit.Suspect(args.lab / "students" / slug, gw / "cuirass.yaml", gw / "data", False),
            probes,
            keyring,
            teacher,
            http,
            queries=args.queries,
            max_tokens=cfg["max_tokens"],
            seed=cfg["seed"],
            threads=args.threads,
            device="cpu",
            where=args.lab / "audit",
        )
        access[name]["seconds"] = time.perf_counter() - s0
        w = access[name]["weights"]
        print(
            f"{name}: black box needed {access[name]['black_box']['needed']}, weights needed {w['needed']}", flush=True
        )
    for name, a in access.items():
        target = results["control"] if name == audit.CONTROL else results["conditions"][name]
        target["audit"]["access"] = a
    (args.lab / "access.json").write_text(json.dumps(access, indent=1, default=str))
    print(f"\n{(time.perf_counter() - t0) / 60:.1f} min\n")
    print("\n".join(access_table(results)))


if __name__ == "__main__":
    main()
