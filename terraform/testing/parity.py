#!/usr/bin/env python3
"""Checks that switching clouds means switching a module: fails unless

- modules/aws and modules/azure declare the same variables (names, types, defaults,
  sensitivity, nullability and validations; descriptions may differ) and the same outputs;
- environments/aws-dev and environments/azure-dev declare the same variables as the modules
  and each other, re-export the same outputs, pass every variable to the module, and differ
  in nothing but the module's `source` and their `terraform` / `provider` blocks.

Needs python-hcl2 (8.x). Usage: parity.py [TERRAFORM_DIR] (default: this file's parent's parent).
"""

import json
import pathlib
import sys

import hcl2

CLOUDS = ("aws", "azure")


def strip(value):
    """The parsed HCL without the parser's bookkeeping (comments, block markers) and with
    labels unquoted, so that two equivalent configurations compare equal."""
    if isinstance(value, dict):
        return {
            k.strip('"'): strip(v) for k, v in value.items() if not k.startswith("__")
        }
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def load(directory):
    """Every block of the directory's .tf files (override files excluded), by block type."""
    blocks = {}
    files = sorted(p for p in directory.glob("*.tf") if not p.stem.endswith("override"))
    if not files:
        raise SystemExit(f"{directory}: no .tf files")
    for path in files:
        with path.open() as f:
            parsed = strip(hcl2.load(f))
        for kind, items in parsed.items():
            blocks.setdefault(kind, []).extend(items)
    return blocks


def labelled(blocks, kind):
    """name => body for one-label blocks (variable, output, module)."""
    out = {}
    for item in blocks.get(kind, []):
        for name, body in item.items():
            if name in out:
                raise SystemExit(f"duplicate {kind} {name!r}")
            out[name] = body
    return out


def variables(blocks):
    return {
        name: {k: v for k, v in body.items() if k != "description"}
        for name, body in labelled(blocks, "variable").items()
    }


def outputs(blocks):
    return set(labelled(blocks, "output"))


def show(value):
    return json.dumps(value, indent=2, sort_keys=True)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
    errors = []

    modules = {c: load(root / "modules" / c) for c in CLOUDS}
    envs = {c: load(root / "environments" / f"{c}-dev") for c in CLOUDS}

    # 1. The modules' interfaces.
    mvars = {c: variables(modules[c]) for c in CLOUDS}
    if set(mvars["aws"]) != set(mvars["azure"]):
        errors.append(
            "module variables differ: only aws "
            f"{sorted(set(mvars['aws']) - set(mvars['azure']))}, only azure "
            f"{sorted(set(mvars['azure']) - set(mvars['aws']))}"
        )
    for name in sorted(set(mvars["aws"]) & set(mvars["azure"])):
        if mvars["aws"][name] != mvars["azure"][name]:
            errors.append(
                f"module variable {name!r} differs:\naws: {show(mvars['aws'][name])}\n"
                f"azure: {show(mvars['azure'][name])}"
            )
    mouts = {c: outputs(modules[c]) for c in CLOUDS}
    if mouts["aws"] != mouts["azure"]:
        errors.append(
            f"module outputs differ: only aws {sorted(mouts['aws'] - mouts['azure'])}, "
            f"only azure {sorted(mouts['azure'] - mouts['aws'])}"
        )

    # 2. Each environment against its module.
    for c in CLOUDS:
        evars = variables(envs[c])
        if evars != mvars[c]:
            diff = sorted(
                n for n in set(evars) | set(mvars[c]) if evars.get(n) != mvars[c].get(n)
            )
            errors.append(f"{c}-dev variables differ from modules/{c}: {diff}")
        if outputs(envs[c]) != mouts[c]:
            errors.append(
                f"{c}-dev outputs {sorted(outputs(envs[c]))} are not the module's "
                f"{sorted(mouts[c])}"
            )
        mods = labelled(envs[c], "module")
        if len(mods) != 1:
            errors.append(f"{c}-dev must call exactly one module, calls {sorted(mods)}")
            continue
        (body,) = mods.values()
        source = body.get("source", "").strip('"')
        if source != f"../../modules/{c}":
            errors.append(f"{c}-dev module source is {source!r}, not ../../modules/{c}")
        args = {k for k in body if k not in ("source", "version", "providers", "depends_on")}
        if args != set(mvars[c]):
            errors.append(
                f"{c}-dev does not pass every module variable: missing "
                f"{sorted(set(mvars[c]) - args)}, unknown {sorted(args - set(mvars[c]))}"
            )

    # 3. The environments against each other: only the module source, `terraform` and
    #    `provider` blocks may differ.
    def comparable(blocks):
        out = {k: v for k, v in blocks.items() if k not in ("terraform", "provider")}
        out["module"] = [
            {name: {k: v for k, v in body.items() if k != "source"} for name, body in item.items()}
            for item in out.get("module", [])
        ]
        return out

    a, z = comparable(envs["aws"]), comparable(envs["azure"])
    for kind in sorted(set(a) | set(z)):
        if a.get(kind) != z.get(kind):
            errors.append(f"aws-dev and azure-dev differ in their {kind} blocks")

    for e in errors:
        print(f"parity: {e}", file=sys.stderr)
    if errors:
        return 1
    print(
        f"parity: ok ({len(mvars['aws'])} variables, {len(mouts['aws'])} outputs; "
        "environments differ only in module source and provider blocks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
