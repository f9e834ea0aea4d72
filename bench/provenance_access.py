"""Provenance by access mode on a finished distillation-lab run (issue 21): black box and open weights.

    .venv/bin/python bench/provenance_access.py --lab lab-out/distill

`cuirass lab distill` now audits every student both ways itself; this runs the same step
(`cuirass.lab.distill.audit.access_modes`) on a run's saved students and HTTP audit transcripts, so a run
made before it (or with other settings) can be measured without training again. Per student: the
black-box curve (Holm p of the whole family on the first n answers of its HTTP audit), the weights audit
(`audit_endpoint` on the model directory with the likelihood channel, `--queries` probes) and its curve,
and on each the check with 20 keys that never marked anything. Writes (and merges into) `access.json` in the
run's folder and prints the Markdown table; `--mode weights --only NAME` measures a student as soon as it is
trained, before the run's HTTP audits exist.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cuirass.config import load_settings
from cuirass.keyring import Keyring
from cuirass.lab.distill import audit, workload
from cuirass.lab.distill.config import DistillConfig, StudentSpec
from cuirass.lab.distill.report import access_table
from cuirass.lab.distill.run import master_secret
from cuirass.prove.endpoint import context
from cuirass.prove.probes import spread

GATEWAY = {"A": "plain", "B": "defended", "D": "defended", "E": "stealth", audit.CONTROL: "plain"}


def probes_of(cfg: dict[str, Any]) -> list[str]:
    """The lab's probe order: condition A's harvested problems, spread over the signature's windows."""
    config = DistillConfig(**{**cfg, "student": StudentSpec(**cfg["student"]), "conditions": tuple(cfg["conditions"])})
    return spread([r.problem.question for r in workload.campaign(config, False, "a") if r.harvest])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", type=Path, default=Path("lab-out/distill"))
    ap.add_argument("--queries", type=int, default=200, help="probes of each weights audit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append", help="these students only (repeatable); default every one")
    ap.add_argument(
        "--mode", choices=("both", "weights", "black-box"), default="both", help="access modes to (re)measure"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = json.loads((args.lab / "results.json").read_text()) if (args.lab / "results.json").is_file() else None
    cfg = results["config"] if results else DistillConfig.full().to_dict()
    keyring = Keyring(master_secret(cfg["seed"]).encode())
    teacher = str(args.lab / "models" / "teacher")
    probes = probes_of(cfg)
    saved = args.lab / "access.json"
    access: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    names = args.only or ([*results["conditions"], audit.CONTROL] if results else [])
    for name in names:
        slug = name.replace(":", "-")
        gw = args.lab / f"gateway-{GATEWAY.get(name, 'plain')}"
        suspect = audit.Suspect(args.lab / "students" / slug, gw / "cuirass.yaml", gw / "data", False)
        ctx = context(load_settings(suspect.gateway_config, data_dir=suspect.data_dir), keyring, teacher)
        got = access.setdefault(name, {})
        s0 = time.perf_counter()
        if args.mode in ("both", "black-box"):
            http = json.loads((args.lab / "audit" / f"audit-{slug}.json").read_text())
            asked = [a["prompt"] for a in http["transcripts"]["suspect"]]
            assert asked[: len(probes)] == probes[: len(asked)], "the HTTP audit asked other probes than rebuilt"
            got["black_box"] = audit.black_box_mode(ctx, http)
        if args.mode in ("both", "weights"):
            got["weights"] = audit.weights_mode(
                suspect,
                ctx,
                probes,
                queries=args.queries,
                max_tokens=cfg["max_tokens"],
                seed=cfg["seed"],
                threads=args.threads,
                where=args.lab / "audit",
            )
        got.setdefault("seconds", {})[args.mode] = time.perf_counter() - s0
        saved.write_text(json.dumps(access, indent=1, default=str))
        print(f"{name}: {args.mode} in {time.perf_counter() - s0:.0f} s", flush=True)
    print(f"\n{(time.perf_counter() - t0) / 60:.1f} min\n")
    if results:
        for name, a in access.items():
            target = results["control"] if name == audit.CONTROL else results["conditions"].get(name)
            if target is not None:
                target["audit"]["access"] = a
        print("\n".join(access_table(results)))


if __name__ == "__main__":
    main()
