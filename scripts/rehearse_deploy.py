#!/usr/bin/env python3
"""Deploy rehearsal: creates the stack of template.yaml on the local emulator, as `sam deploy`
would create it in AWS, and checks what it created.

    eval "$(scripts/moto start)"
    .venv/bin/python scripts/rehearse_deploy.py              # create the stack, check it, delete it
    .venv/bin/python scripts/rehearse_deploy.py --self-test  # each workaround is still needed
    .venv/bin/python scripts/rehearse_deploy.py --keep NAME  # create and check the stack NAME,
                                                             # keep it, print its outputs (JSON)

The template is translated with the SAM translator (the code `sam deploy` runs in the
service; scripts/iam_check.py's `translate`), the code and the state machine definition are
put where the translated template expects them, and CloudFormation on moto creates the stack
with samconfig.toml's defaults plus the local stack's overrides (StateMachineType=STANDARD:
the emulator has no StartSyncExecution; DeletionProtection=false, to delete the stack after). The check then reads back what was created: every
resource of the translated template in CREATE_COMPLETE, every declared output present, the
tables' keys and index as deploy/tables.json has them, the state machine's definition the ASL
with every function ARN substituted, and each function's environment as the template sets it.

Where moto 5.2.5's CloudFormation cannot create what AWS does, the template stays as AWS needs
it and the rehearsal rewrites its own copy, in WORKAROUNDS below, one function each.
`--self-test` proves each is still needed: it creates a minimal stack with the gap on moto and
expects the failure; when moto fixes one, the self-test fails and names the workaround to
remove. It also plants problems (a variable, an output, a missing workaround) and expects the
check to report each.

Endpoints come from AWS_ENDPOINT_URL only (a loopback address: the rehearsal creates and
deletes a stack).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import iam_check  # noqa: E402  (the translator wrapper shared with the IAM check)

REGION = os.environ.get("AWS_REGION", "us-east-1")
STACK = "rehearsal"
# The local stack's parameter overrides; every other parameter takes the template's default, as
# `sam deploy` with samconfig.toml does (it sets no parameter_overrides). STANDARD: the emulator
# has no StartSyncExecution. DeletionProtection off: the rehearsal deletes what it created.
OVERRIDES = {"StateMachineType": "STANDARD", "DeletionProtection": "false"}
BUCKET, KEY = iam_check.DUMMY_S3.removeprefix("s3://").split("/", 1)


def client(name: str):
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urlparse(endpoint).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"rehearse_deploy: AWS_ENDPOINT_URL={endpoint!r} is not a loopback address")
    return boto3.client(name, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test")


# ---------------------------------------------------------------------------------------------
# Conditions: the template's, evaluated for the parameters given
# ---------------------------------------------------------------------------------------------

def _value(x: Any, params: dict[str, Any]) -> Any:
    if isinstance(x, dict) and "Ref" in x:
        return params[x["Ref"]]
    return x


def _condition(c: Any, params: dict[str, Any], known: dict[str, bool]) -> bool:
    (fn, args), = c.items()
    if fn == "Fn::Equals":
        a, b = (_value(x, params) for x in args)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not _condition(args[0], params, known)
    if fn == "Fn::And":
        return all(_condition(x, params, known) for x in args)
    if fn == "Fn::Or":
        return any(_condition(x, params, known) for x in args)
    if fn == "Condition":
        return known[args]
    raise ValueError(f"condition {fn} not understood")


def conditions(cfn: dict[str, Any], params: dict[str, Any]) -> dict[str, bool]:
    known: dict[str, bool] = {}
    pending = dict(cfn.get("Conditions", {}))
    while pending:
        progress = False
        for name in list(pending):
            try:
                known[name] = _condition(pending[name], params, known)
            except KeyError:
                continue
            del pending[name]
            progress = True
        if not progress:
            raise ValueError(f"conditions that cannot be evaluated: {sorted(pending)}")
    return known


_NO_VALUE = object()


def _resolve(node: Any, known: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return _resolve(yes if known[name] else no, known)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for k, v in node.items():
            r = _resolve(v, known)
            if r is not _NO_VALUE:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (_resolve(x, known) for x in node) if r is not _NO_VALUE]
    return node


# ---------------------------------------------------------------------------------------------
# Workarounds: what moto's CloudFormation cannot do that AWS's does, each in one function
# ---------------------------------------------------------------------------------------------

def novalue_in_lists(cfn: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """moto keeps `!Ref AWS::NoValue` inside a list as null (an IAM role's `Policies` with an
    `!If [Cond, {...}, !Ref AWS::NoValue]` fails with a 500). The rehearsal evaluates the
    conditions for its parameters itself and drops what they turn off."""
    known = conditions(cfn, params)
    out = dict(cfn)
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, item in cfn.get(section, {}).items():
            if "Condition" in item and not known[item["Condition"]]:
                continue
            unconditional = {k: v for k, v in item.items() if k != "Condition"}
            kept[name] = _resolve(unconditional, known)
        out[section] = kept
    out.pop("Conditions", None)
    return out


def bus_refs_by_name(cfn: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """moto resolves `!Ref Bus` of an event bus to the bus object instead of its name: a rule's
    `EventBusName` fails with a 500, and a function whose environment holds one (persist's
    `ANOMALY_BUS_NAME`) cannot be read back. The rehearsal writes each bus's name in."""
    names = {k: r["Properties"]["Name"] for k, r in cfn["Resources"].items()
             if r["Type"] == "AWS::Events::EventBus"}

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in names:
                return names[node["Ref"]]
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(x) for x in node]
        return node

    return swap(cfn)


def alarm_arn_by_name(cfn: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """moto has no `Fn::GetAtt Alarm.Arn` ("references undefined resource"), which the
    dashboard's alarm widget uses. The rehearsal builds the ARN from the alarm's name."""
    text = json.dumps(cfn)
    for name, r in cfn["Resources"].items():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            arn = "arn:aws:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${" + name + "}"
            text = text.replace("${" + name + ".Arn}", arn)
    return json.loads(text)


def state_machine_inline(cfn: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """moto's state machine reads only `DefinitionString` (no `DefinitionS3Location`, no
    `DefinitionSubstitutions`). The rehearsal inlines each machine's ASL (its `DefinitionUri` in
    template.yaml), the substitutions joined in with `Fn::Join` (not `Fn::Sub`: moto's `Fn::Sub`
    is Python's string.Template, which turns the ASL's `$$` context paths into `$`)."""
    for logical_id, r in cfn["Resources"].items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::StepFunctions::StateMachine" and "DefinitionS3Location" in props:
            asl = (ROOT / definition_uris().get(logical_id, "statemachines/pipeline.asl.json")).read_text()
            del props["DefinitionS3Location"]
            subs = props.pop("DefinitionSubstitutions", {})
            parts = re.split(r"\$\{([A-Za-z0-9_]+)\}", asl)
            # re.split with a group: text, key, text, key, ..., text.
            joined = [subs.get(p, "${" + p + "}") if i % 2 else p for i, p in enumerate(parts)]
            props["DefinitionString"] = {"Fn::Join": ["", joined]}
    return cfn


def definition_uris() -> dict[str, str]:
    """Each state machine of template.yaml and the ASL file it is defined by."""
    sam = iam_check.load_template(ROOT / "template.yaml")
    return {k: r["Properties"]["DefinitionUri"] for k, r in sam["Resources"].items()
            if r.get("Type") == "AWS::Serverless::StateMachine"}


WORKAROUNDS = [novalue_in_lists, bus_refs_by_name, alarm_arn_by_name, state_machine_inline]

# Resource types moto's CloudFormation skips without an error (it has no model of them): the
# stack completes without them, so the rehearsal cannot check them and says so.
NOT_CREATED_BY_MOTO = {"AWS::CloudWatch::Alarm", "AWS::SQS::QueuePolicy", "AWS::Lambda::EventInvokeConfig",
                       "AWS::S3::BucketPolicy"}


# ---------------------------------------------------------------------------------------------
# The rehearsal
# ---------------------------------------------------------------------------------------------

def parameters(cfn: dict[str, Any], stack: str) -> dict[str, Any]:
    params = {k: OVERRIDES.get(k, p.get("Default")) for k, p in cfn.get("Parameters", {}).items()}
    params.update({"AWS::Region": REGION, "AWS::StackName": stack})
    return params


def prepared(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sam = iam_check.load_template(ROOT / "template.yaml")
    cfn = iam_check.translate(sam)
    params = parameters(cfn, stack)
    for w in WORKAROUNDS:
        cfn = w(cfn, params)
    return cfn, params


def upload_artifacts() -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    buf = io.BytesIO()
    # The code the functions are created with: invocations in the local stack go to the real
    # binaries under `cargo lambda watch` (lambda-router), never to this.
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=buf.getvalue())


def create(cf, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    cf.create_stack(
        StackName=name, TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    for _ in range(120):
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        time.sleep(0.5)
    return stack


def check(cfn: dict[str, Any], stack: dict[str, Any]) -> list[str]:
    cf = client("cloudformation")
    name = stack["StackName"]
    problems = []
    if stack["StackStatus"] != "CREATE_COMPLETE":
        problems.append(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    pages = cf.get_paginator("list_stack_resources").paginate(StackName=name)
    made = {r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"]}
    for name, r in cfn["Resources"].items():
        got = made.get(name)
        if r["Type"] in NOT_CREATED_BY_MOTO and got is None:
            continue
        if got is None or got["ResourceStatus"] != "CREATE_COMPLETE":
            problems.append(f"{name} ({r['Type']}) not created: {got and got['ResourceStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for name in cfn.get("Outputs", {}):
        if not outputs.get(name):
            problems.append(f"output {name} missing")
    if problems:
        return problems

    # The tables, as deploy/tables.json has them.
    ddb = client("dynamodb")
    tables = json.loads((ROOT / "deploy" / "tables.json").read_text())
    for role, spec in tables.items():
        if not isinstance(spec, dict) or "LogicalId" not in spec:
            continue
        physical = made[spec["LogicalId"]]["PhysicalResourceId"]
        t = ddb.describe_table(TableName=physical)["Table"]
        if t["KeySchema"] != spec["KeySchema"]:
            problems.append(f"{role} table keys {t['KeySchema']} != {spec['KeySchema']}")
        want_idx = sorted(i["IndexName"] for i in spec.get("GlobalSecondaryIndexes") or [])
        got_idx = sorted(i["IndexName"] for i in t.get("GlobalSecondaryIndexes", []))
        if want_idx != got_idx:
            problems.append(f"{role} table indexes {got_idx} != {want_idx}")

    # The state machines: their ASL, every substitution made.
    sfn = client("stepfunctions")
    for output, path in (("StateMachineArn", "pipeline.asl.json"), ("BackfillStateMachineArn", "backfill.asl.json")):
        machine = sfn.describe_state_machine(stateMachineArn=outputs[output])
        definition = json.loads(machine["definition"] or "{}")
        asl = json.loads((ROOT / "statemachines" / path).read_text())
        if set(definition.get("States", {})) != set(asl["States"]):
            problems.append(f"the states of the state machine {output} are not {path}'s")
        if "${" in machine["definition"]:
            problems.append(f"the state machine {output}'s definition has unsubstituted ${{...}}")
    machine = sfn.describe_state_machine(stateMachineArn=outputs["StateMachineArn"])
    definition = json.loads(machine["definition"] or "{}")
    lam = client("lambda")
    arns = {lam.get_function(FunctionName=made[f"{s}Function"]["PhysicalResourceId"])
            ["Configuration"]["FunctionArn"] for s in ("Validate", "Enrich", "Detect", "Persist")}
    states = definition.get("States", {}).values()
    used = {s.get("Resource") for s in states} | {
        s.get("Parameters", {}).get("FunctionName") for s in states}
    if not arns <= used:
        problems.append(f"the state machine does not call {sorted(arns - used)}")

    # Each function's environment, as the translated template sets it.
    for name, r in cfn["Resources"].items():
        if r["Type"] != "AWS::Lambda::Function":
            continue
        want = set(r["Properties"].get("Environment", {}).get("Variables", {}))
        conf = lam.get_function(FunctionName=made[name]["PhysicalResourceId"])["Configuration"]
        got = set(conf.get("Environment", {}).get("Variables", {}))
        if want != got:
            problems.append(f"{name} environment {sorted(got)} != {sorted(want)}")
    return problems


def rehearse(name: str = STACK, keep: bool = False) -> int:
    cfn, params = prepared(name)
    upload_artifacts()
    cf = client("cloudformation")
    given = {k: v for k, v in params.items() if not k.startswith("AWS::") and v is not None}
    stack = create(cf, name, cfn, given)
    problems = check(cfn, stack)
    if not keep:
        try:
            cf.delete_stack(StackName=name)
        except Exception as e:  # noqa: BLE001  (a stack left behind is reported, not fatal)
            problems.append(f"the stack could not be deleted: {e}")
    if problems:
        for p in problems:
            print(f"rehearse_deploy: {p}", file=sys.stderr)
        return 1
    if keep:
        # What the local stack runs on: the outputs, as a user copies them after `sam deploy`,
        # and the state machine as created (see scripts/local_aws.py `register`).
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        sfn = client("stepfunctions")

        def described(arn):
            machine = sfn.describe_state_machine(stateMachineArn=arn)
            return {k: machine.get(k) for k in ("name", "definition", "roleArn", "type", "loggingConfiguration")}

        print(json.dumps({"outputs": outputs, "state_machine": described(outputs["StateMachineArn"]),
                          "backfill_state_machine": described(outputs["BackfillStateMachineArn"])}))
        return 0
    skipped = [r for r in cfn["Resources"].values() if r["Type"] in NOT_CREATED_BY_MOTO]
    created = len(cfn["Resources"]) - len(skipped)
    kinds = sorted({r["Type"] for r in cfn["Resources"].values()} - set(NOT_CREATED_BY_MOTO))
    print(f"ok: template.yaml created on the emulator: {created} resources of {len(kinds)} types "
          f"checked, {len(cfn.get('Outputs', {}))} outputs; {len(skipped)} resources of "
          f"{len({r['Type'] for r in skipped})} types moto does not create "
          f"({', '.join(sorted(NOT_CREATED_BY_MOTO))}); "
          f"{len(WORKAROUNDS)} workarounds ({', '.join(w.__name__ for w in WORKAROUNDS)})")
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: each workaround's gap is still there
# ---------------------------------------------------------------------------------------------

def _fails(name: str, body: dict[str, Any]) -> bool:
    cf = client("cloudformation")
    try:
        stack = create(cf, name, body, {})
    except Exception:  # moto answers these gaps with a 500 or a validation error
        return True
    ok = stack["StackStatus"] == "CREATE_COMPLETE"
    cf.delete_stack(StackName=name)
    return not ok


def self_test() -> int:
    role_doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "lambda.amazonaws.com"}}]}
    gaps = {
        novalue_in_lists: {"Conditions": {"No": {"Fn::Equals": ["a", "b"]}}, "Resources": {"Role": {
            "Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": role_doc, "Policies": [
                {"Fn::If": ["No", {"PolicyName": "p", "PolicyDocument": role_doc}, {"Ref": "AWS::NoValue"}]}]}}}},
        bus_refs_by_name: {"Resources": {
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "self-test-bus"}},
            "Rule": {"Type": "AWS::Events::Rule", "Properties": {
                "EventBusName": {"Ref": "Bus"}, "EventPattern": {"source": ["x"]}}}}},
        alarm_arn_by_name: {"Resources": {
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "AlarmName": "self-test-alarm", "MetricName": "m", "Namespace": "n", "Statistic": "Sum",
                "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
                "ComparisonOperator": "GreaterThanThreshold"}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {
                "TopicName": {"Fn::Sub": "t-${Alarm.Arn}"}}}}},
        state_machine_inline: {"Resources": {"Machine": {
            "Type": "AWS::StepFunctions::StateMachine", "Properties": {
                "RoleArn": "arn:aws:iam::123456789012:role/r",
                "DefinitionS3Location": {"Bucket": BUCKET, "Key": "pipeline.asl.json"},
                "DefinitionSubstitutions": {"X": "y"}}}}},
    }
    client("s3").create_bucket(Bucket=BUCKET)
    client("s3").put_object(Bucket=BUCKET, Key="pipeline.asl.json",
                            Body=(ROOT / "statemachines" / "pipeline.asl.json").read_bytes())
    stale = []
    for n, (workaround, body) in enumerate(gaps.items()):
        if workaround is state_machine_inline:
            # moto accepts the stack but ignores the S3 definition: the machine it makes has none.
            cf = client("cloudformation")
            stack = create(cf, f"self-test-{n}", body, {})
            arn = [r["PhysicalResourceId"] for r in cf.list_stack_resources(
                StackName=f"self-test-{n}")["StackResourceSummaries"]]
            still = stack["StackStatus"] != "CREATE_COMPLETE" or not arn or not json.loads(
                client("stepfunctions").describe_state_machine(stateMachineArn=arn[0])["definition"]
                or "{}").get("States")
            cf.delete_stack(StackName=f"self-test-{n}")
        else:
            still = _fails(f"self-test-{n}", body)
        print(f"{'ok' if still else 'STALE'}: {workaround.__name__}: "
              f"{'moto still needs it' if still else 'moto creates this now: remove the workaround'}")
        if not still:
            stale.append(workaround.__name__)
    # The types moto skips: still absent from its CloudFormation model map (the version in
    # scripts/tools.txt, the one the emulator runs).
    from moto.cloudformation.parsing import get_model_map

    models = get_model_map()
    for kind in NOT_CREATED_BY_MOTO:
        still = kind not in models
        print(f"{'ok' if still else 'STALE'}: {kind}: "
              f"{'moto still skips it' if still else 'moto creates it now: check it'}")
        if not still:
            stale.append(kind)
    # The check itself can fail: the real stack, read back against a template that asks for one
    # thing more (a function variable, an output) and against one left without a workaround.
    caught = planted_problems()
    for what, problems in caught.items():
        print(f"{'ok' if problems else 'MISSED'}: the check catches {what}")
    return 1 if stale or not all(caught.values()) else 0


def planted_problems() -> dict[str, list[str]]:
    name = "self-test-planted"
    cfn, params = prepared(name)
    upload_artifacts()
    cf = client("cloudformation")
    given = {k: v for k, v in params.items() if not k.startswith("AWS::") and v is not None}
    stack = create(cf, name, cfn, given)
    extra_var = json.loads(json.dumps(cfn))
    extra_var["Resources"]["EnrichFunction"]["Properties"]["Environment"]["Variables"]["PLANTED"] = "x"
    extra_output = json.loads(json.dumps(cfn))
    extra_output["Outputs"]["PlantedOutput"] = {"Value": "x"}
    caught = {
        "a variable a function lacks": check(extra_var, stack),
        "an output the stack lacks": check(extra_output, stack),
    }
    cf.delete_stack(StackName=name)
    # Without the state machine workaround the machine has no definition: the check says so.
    unfixed, _ = prepared(name)
    bare = iam_check.translate(iam_check.load_template(ROOT / "template.yaml"))
    for w in WORKAROUNDS:
        if w is not state_machine_inline:
            bare = w(bare, params)
    stack = create(cf, name, bare, given)
    caught["a state machine without the ASL"] = [p for p in check(unfixed, stack) if "state machine" in p]
    cf.delete_stack(StackName=name)
    return caught


def main() -> int:
    args = sys.argv[1:]
    if "--self-test" in args:
        return self_test()
    if "--keep" in args:
        return rehearse(args[args.index("--keep") + 1], keep=True)
    return rehearse()


if __name__ == "__main__":
    sys.exit(main())
