"""Checks of the deployment template that the linters do not make, called by
scripts/check-template (one subcommand per check; each exits non-zero on a finding):

    python3 scripts/template_checks.py sanity TEMPLATE   # parameter values, dashboard JSON
    python3 scripts/template_checks.py asl TEMPLATE      # state machine against the template
    python3 scripts/template_checks.py tables TEMPLATE   # tables against deploy/tables.json
    python3 scripts/template_checks.py built             # what sam build produced
"""

import json
import re
import struct
import sys
from pathlib import Path

from cfnlint.decode import decode


def sanity(template_path):
    """What the linters let through: YAML 1.1 turns unquoted OFF/ON/YES/NO into booleans (an
    AllowedValues entry `OFF` silently becomes false), and a dashboard body is only parsed as JSON
    by CloudWatch at deploy time."""
    template, matches = decode(template_path)
    if matches:
        sys.exit(f"{template_path}: {matches}")
    problems = []
    params = template.get("Parameters", {})
    for name, p in params.items():
        for value in [p.get("Default"), *(p.get("AllowedValues") or [])]:
            if isinstance(value, bool):
                problems.append(f"parameter {name}: value {value} is a YAML boolean; quote it (\"OFF\", \"true\")")


    def placeholder(m):
        key = m.group(1)
        p = params.get(key)
        return str(p.get("Default", 1)) if p and p.get("Type") == "Number" else "x"


    dashboards = 0
    for lid, res in template["Resources"].items():
        if res.get("Type") != "AWS::CloudWatch::Dashboard":
            continue
        body = res["Properties"]["DashboardBody"]
        text = body.get("Fn::Sub") if isinstance(body, dict) else body
        text = text[0] if isinstance(text, list) else text
        try:
            widgets = json.loads(re.sub(r"\$\{([^}!]+)\}", placeholder, text))["widgets"]
            dashboards += 1
            print(f"ok: {lid}: {len(widgets)} widgets, valid JSON")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            problems.append(f"{lid}: DashboardBody is not valid dashboard JSON after substitution: {e}")
    if problems:
        print("\n".join(f"FAIL: {p}" for p in problems))
        sys.exit(1)
    print(f"ok: {len(params)} parameters, no YAML booleans")


def asl(template_path):
    """The ASL uses exactly the template's DefinitionSubstitutions, and no Lambda function can
    outlive the TimeoutSeconds of a Task state that invokes it (the state would give up while the
    function still runs)."""
    template, matches = decode(template_path)
    if matches:
        sys.exit(f"{template_path}: {matches}")
    resources = template["Resources"]
    problems = []
    for sm_id, sm in resources.items():
        if sm.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = sm["Properties"]
        path = Path(props["DefinitionUri"])
        if not path.exists():
            problems.append(f"{sm_id}: DefinitionUri {path} does not exist")
            continue
        text = path.read_text()
        try:
            asl = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not JSON: {e}")
            continue
        subs = props.get("DefinitionSubstitutions", {})
        used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
        for key in sorted(used - set(subs)):
            problems.append(f"{path} uses ${{{key}}}, which {sm_id} does not substitute")
        for key in sorted(set(subs) - used):
            problems.append(f"{sm_id} substitutes {key}, which {path} never uses")

        # Substitution key -> function logical id (values are !GetAtt <Function>.Arn).
        key_fn = {}
        for key, value in subs.items():
            ga = value.get("Fn::GetAtt") if isinstance(value, dict) else None
            if ga:
                key_fn[key] = ga[0] if isinstance(ga, list) else ga.split(".")[0]
        default_timeout = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)

        def states(node):
            for name, state in (node.get("States") or {}).items():
                yield name, state
                for branch in state.get("Branches", []):
                    yield from states(branch)
                for key in ("Iterator", "ItemProcessor"):
                    if key in state:
                        yield from states(state[key])

        checked = 0
        for name, state in states(asl):
            if state.get("Type") != "Task" or "TimeoutSeconds" not in state:
                continue
            refs = re.findall(r"\$\{([A-Za-z0-9_]+)\}", json.dumps(state))
            for key in refs:
                fn = key_fn.get(key)
                if fn is None:
                    continue
                timeout = resources[fn]["Properties"].get("Timeout", default_timeout)
                if not isinstance(timeout, int):
                    problems.append(f"{fn}: Timeout {timeout} is not a number; it cannot be checked against state {name}")
                    continue
                checked += 1
                if timeout > state["TimeoutSeconds"]:
                    problems.append(
                        f"{path}: state {name} gives up after {state['TimeoutSeconds']} s, "
                        f"but {fn} may run {timeout} s (lower its Timeout or raise TimeoutSeconds)")
        print(f"ok: {path}: substitutions {', '.join(sorted(used & set(subs)))}; "
              f"{checked} task timeouts checked against the functions' timeouts")
    if problems:
        print("\n".join(f"FAIL: {p}" for p in problems))
        sys.exit(1)


def built():
    """The five functions SAM built are aarch64 ELF executables named bootstrap."""
    bad = []
    for fn in ("IngestFunction", "ValidateFunction", "EnrichFunction", "DetectFunction", "PersistFunction"):
        path = Path(".aws-sam/build") / fn / "bootstrap"
        if not path.is_file():
            bad.append(f"{path} is missing")
            continue
        head = path.read_bytes()[:20]
        machine = struct.unpack("<H", head[18:20])[0] if len(head) == 20 else None
        if head[:4] != b"\x7fELF" or machine != 183:  # EM_AARCH64
            bad.append(f"{path} is not an aarch64 ELF executable")
        else:
            size = path.stat().st_size
            print(f"ok: {path} (aarch64, {size // 1024} KiB = {size / 2**20:.1f} MiB)")
    if bad:
        sys.exit("\n".join(f"FAIL: {b}" for b in bad))


def tables(template_path):
    """The template declares the tables exactly as deploy/tables.json defines them (the file
    the store's --create-tables and the local AWS stack build their tables from)."""
    template, matches = decode(template_path)
    if matches:
        sys.exit(f"{template_path}: {matches}")
    spec = json.loads(Path("deploy/tables.json").read_text())
    problems = []
    for role, want in spec.items():
        if role.startswith("_"):
            continue
        lid = want["LogicalId"]
        res = template["Resources"].get(lid)
        if res is None or res.get("Type") != "AWS::DynamoDB::Table":
            problems.append(f"{lid}: no AWS::DynamoDB::Table of that name in the template")
            continue
        props = res["Properties"]
        before = len(problems)
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{lid}: BillingMode is {props.get('BillingMode')}, not PAY_PER_REQUEST")
        for field in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
            got = json.loads(json.dumps(props.get(field, [])))
            if got != want[field]:
                problems.append(f"{lid}.{field}: template has {got}, deploy/tables.json has {want[field]}")
        if len(problems) == before:
            print(f"ok: {lid} ({role}) matches deploy/tables.json")
    if problems:
        print("\n".join(f"FAIL: {p}" for p in problems))
        sys.exit(1)


def main(argv):
    checks = {"sanity": sanity, "asl": asl, "tables": tables, "built": built}
    if not argv or argv[0] not in checks:
        sys.exit(f"usage: template_checks.py {{{'|'.join(checks)}}} [TEMPLATE]")
    checks[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
