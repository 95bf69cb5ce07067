#!/usr/bin/env python3
"""Least-privilege check of the IAM in the SAM template.

    python3 scripts/iam_check.py template.yaml              # check; exit 1 with the findings
    python3 scripts/iam_check.py --self-test template.yaml  # prove the check catches violations

The template is translated with the SAM translator (the code `sam deploy` runs in the
service), so what is checked is each principal's *effective* policy: explicit roles, SAM
`Policies` statements, SAM policy templates expanded to their actions, and any managed policy
SAM would attach. The principals are every Lambda function and state machine; for each one:

1. no allowed action contains a wildcard (`dynamodb:*`, `s3:Get*`, `*`);
2. no `Resource: "*"` (or an ARN with a wildcard in place of the whole resource name) unless
   every action of that statement is in RESOURCE_STAR_EXCEPTIONS below, each with the reason
   AWS gives no narrower resource;
3. the actions granted are exactly the ones allow-listed for that principal in
   deploy/permissions.json: nothing granted that is not listed, nothing listed that is not
   granted;
4. no managed policy (its contents are invisible to this check: write the statements out);
5. the role trusts only the service that runs the principal.

Resource-based policies (queue, topic and bus policies, Lambda permissions) must name a
principal and must not use wildcard actions either. Statements under `Fn::If` count in every
branch, so permissions that exist only under a condition (MSK) are checked too.

Runs in the project venv (.venv, with aws-sam-cli and cfn-lint): started with another Python,
it re-executes itself with .venv/bin/python.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _ensure_venv() -> None:
    """Re-executes with the project venv's Python when cfn-lint or the SAM translator is missing."""
    try:
        import cfnlint.decode  # noqa: F401
        import samtranslator  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        sys.exit(
            "iam_check: needs cfn-lint and the SAM translator; "
            "install them with `.venv/bin/pip install aws-sam-cli cfn-lint` (scripts/check-template does)"
        )


# Actions AWS only authorises on `Resource: "*"`, and why. Nothing else may use it.
RESOURCE_STAR_EXCEPTIONS: dict[str, str] = {
    # X-Ray: no resource-level permissions exist for these actions.
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions (active tracing)",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions (active tracing)",
    "xray:GetSamplingRules": "X-Ray has no resource-level permissions (Step Functions tracing)",
    "xray:GetSamplingTargets": "X-Ray has no resource-level permissions (Step Functions tracing)",
    # The MSK event source mapping's poller runs in the cluster VPC through network interfaces
    # Lambda creates with the execution role; the Describe* actions have no resource-level
    # permissions and the interfaces do not exist before Lambda creates them.
    "ec2:CreateNetworkInterface": "MSK poller ENIs: created by Lambda in the cluster VPC, no ARN known in advance",
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions have no resource-level permissions",
    "ec2:DeleteNetworkInterface": "MSK poller ENIs: created and removed by Lambda, no ARN known in advance",
    "ec2:DescribeVpcs": "EC2 Describe* actions have no resource-level permissions",
    "ec2:DescribeSubnets": "EC2 Describe* actions have no resource-level permissions",
    "ec2:DescribeSecurityGroups": "EC2 Describe* actions have no resource-level permissions",
    # Step Functions execution logging goes through CloudWatch Logs vended-log delivery, whose
    # APIs only accept "*" (Step Functions developer guide, "IAM policies for logging").
    "logs:CreateLogDelivery": "CloudWatch Logs delivery APIs support only Resource *",
    "logs:GetLogDelivery": "CloudWatch Logs delivery APIs support only Resource *",
    "logs:UpdateLogDelivery": "CloudWatch Logs delivery APIs support only Resource *",
    "logs:DeleteLogDelivery": "CloudWatch Logs delivery APIs support only Resource *",
    "logs:ListLogDeliveries": "CloudWatch Logs delivery APIs support only Resource *",
    "logs:PutResourcePolicy": "account-level CloudWatch Logs resource policy for log delivery; Resource * only",
    "logs:DescribeResourcePolicies": "account-level CloudWatch Logs resource policy for log delivery; Resource * only",
    "logs:DescribeLogGroups": "log delivery looks the group up by listing; Resource * only",
}

# The service each kind of principal's role must trust.
TRUSTED_SERVICE = {
    "AWS::Lambda::Function": "lambda.amazonaws.com",
    "AWS::StepFunctions::StateMachine": "states.amazonaws.com",
}

RESOURCE_POLICY_TYPES = {
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::Events::EventBusPolicy": "Statement",
}

DUMMY_S3 = "s3://iam-check-placeholder/artifact"


# ---------------------------------------------------------------------------------------------
# Loading and translating
# ---------------------------------------------------------------------------------------------


def load_template(path: Path) -> dict[str, Any]:
    """Parses a template (YAML or JSON, CloudFormation short tags included) into plain data."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches or template is None:
        problems = "; ".join(str(m) for m in matches) or "empty template"
        raise CheckError(f"{path}: cannot parse: {problems}")
    # cfn-lint's node types carry line marks; plain dicts and strings are easier to copy.
    return json.loads(json.dumps(template))


def translate(sam: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of `sam` (local paths stubbed)."""
    from samtranslator.translator.transform import transform

    # The translator's metrics go to a dummy publisher and warn about it; nothing to see.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    t = copy.deepcopy(sam)
    # Local CodeUri/DefinitionUri are uploaded by `sam deploy`; the translator wants S3.
    glob = t.get("Globals", {}).get("Function", {})
    if isinstance(glob.get("CodeUri"), str):
        glob["CodeUri"] = DUMMY_S3
    for res in t.get("Resources", {}).values():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = DUMMY_S3
        if res.get("Type") == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["DefinitionUri"] = DUMMY_S3

    class ManagedPolicies:
        """Managed policies referenced by name resolve to their AWS ARN (no IAM call)."""

        def load(self) -> dict[str, str]:
            return _NamedPolicies()

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        return transform(t, {}, ManagedPolicies())
    except Exception as e:  # the translator raises many types; all mean "not a valid SAM template"
        raise CheckError(f"SAM transform failed: {e}") from e


class _NamedPolicies(dict):
    def get(self, name: str, default: Any = None) -> str:  # type: ignore[override]
        return f"arn:aws:iam::aws:policy/{name}"

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        return self.get(name)


class CheckError(Exception):
    """The template cannot be checked at all."""


# ---------------------------------------------------------------------------------------------
# Walking policy documents
# ---------------------------------------------------------------------------------------------


def alternatives(node: Any) -> Iterator[Any]:
    """Every concrete value `node` may take: both branches of Fn::If, nothing for AWS::NoValue."""
    if isinstance(node, dict) and len(node) == 1:
        if "Fn::If" in node:
            _, yes, no = node["Fn::If"]
            yield from alternatives(yes)
            yield from alternatives(no)
            return
        if node.get("Ref") == "AWS::NoValue":
            return
    yield node


def elements(node: Any) -> Iterator[Any]:
    """The concrete elements of a list (or of a single value), through Fn::If at both levels."""
    for value in alternatives(node):
        items = value if isinstance(value, list) else [value]
        for item in items:
            yield from alternatives(item)


def render(node: Any) -> list[str]:
    """A resource value as the strings it may stand for; intrinsics as ${...} placeholders."""
    out: list[str] = []
    for v in alternatives(node):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict) and "Ref" in v:
            out.append(f"${{{v['Ref']}}}")
        elif isinstance(v, dict) and "Fn::GetAtt" in v:
            ga = v["Fn::GetAtt"]
            out.append(f"${{{'.'.join(ga) if isinstance(ga, list) else ga}}}")
        elif isinstance(v, dict) and "Fn::Sub" in v:
            sub = v["Fn::Sub"]
            out.append(sub[0] if isinstance(sub, list) else sub)
        elif isinstance(v, dict) and "Fn::Join" in v:
            delim, parts = v["Fn::Join"]
            rendered = [render(p) for p in (parts if isinstance(parts, list) else [parts])]
            out.append(delim.join(r[0] if r else "" for r in rendered))
        else:
            out.append(f"${{{json.dumps(v, sort_keys=True)}}}")
    return out


def is_broad_resource(resource: str) -> bool:
    """`*`, or an ARN that wildcards the whole resource part (`...:*`, `...:table/*`)."""
    if resource.strip() == "*":
        return True
    # ${AWS::Partition} and friends contain colons: take placeholders as one opaque word.
    flat = re.sub(r"\$\{[^}]*\}", "X", resource)
    if flat.startswith("arn:"):
        parts = flat.split(":", 5)
        if len(parts) == 6:
            res = parts[5]
            return res == "*" or re.fullmatch(r"[A-Za-z0-9-]+[/:]\*", res) is not None
    return False


def statements(document: Any) -> Iterator[dict[str, Any]]:
    for doc in alternatives(document):
        if isinstance(doc, dict):
            for st in elements(doc.get("Statement", [])):
                if isinstance(st, dict):
                    yield st


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------


def ref_target(node: Any) -> str | None:
    """The logical id a `!GetAtt X.Arn` or `!Ref X` points to."""
    if isinstance(node, dict):
        if "Fn::GetAtt" in node:
            ga = node["Fn::GetAtt"]
            return (ga[0] if isinstance(ga, list) else ga.split(".")[0])
        if "Ref" in node:
            return node["Ref"]
    return None


def check(sam: dict[str, Any], allow: dict[str, dict[str, str]]) -> tuple[list[str], list[str]]:
    """Checks a SAM template against the allow-list. Returns (violations, summary lines)."""
    cfn = translate(sam)
    resources: dict[str, Any] = cfn.get("Resources", {})
    errors: list[str] = []
    summary: list[str] = []

    # Principals and their roles.
    principal_role: dict[str, str] = {}
    principal_type: dict[str, str] = {}
    for lid, res in resources.items():
        rtype = res.get("Type")
        if rtype not in TRUSTED_SERVICE:
            continue
        props = res.get("Properties") or {}
        role_node = props.get("Role") if rtype == "AWS::Lambda::Function" else props.get("RoleArn")
        role = ref_target(role_node)
        if role is None or resources.get(role, {}).get("Type") != "AWS::IAM::Role":
            errors.append(f"{lid}: its role {json.dumps(role_node)} is not an AWS::IAM::Role of this template, so its permissions cannot be checked")
            continue
        principal_role[lid] = role
        principal_type[lid] = rtype

    role_owner: dict[str, list[str]] = {}
    for p, r in principal_role.items():
        role_owner.setdefault(r, []).append(p)
    for role, owners in role_owner.items():
        if len(owners) > 1:
            errors.append(f"role {role} is shared by {', '.join(sorted(owners))}: each function needs its own role")
    for lid, res in resources.items():
        if res.get("Type") == "AWS::IAM::Role" and lid not in role_owner:
            errors.append(f"role {lid} belongs to no function or state machine of deploy/permissions.json: unreviewed permissions")

    for p in sorted(set(allow) - set(principal_role)):
        errors.append(f"deploy/permissions.json lists {p}, which is not a function or state machine of the template")
    for p in sorted(set(principal_role) - set(allow)):
        errors.append(f"{p} has no entry in deploy/permissions.json: add its actions with a reason each")

    # Policies attached to roles from separate resources.
    attached: dict[str, list[tuple[str, Any]]] = {}
    for lid, res in resources.items():
        rtype = res.get("Type")
        props = res.get("Properties") or {}
        if rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for r in elements(props.get("Roles", [])):
                target = ref_target(r)
                if target:
                    attached.setdefault(target, []).append((lid, props.get("PolicyDocument")))
        elif rtype == "AWS::IAM::RolePolicy":
            target = ref_target(props.get("RoleName"))
            if target:
                attached.setdefault(target, []).append((lid, props.get("PolicyDocument")))

    for principal in sorted(principal_role):
        role = principal_role[principal]
        where = f"{principal} (role {role})"
        props = resources[role].get("Properties") or {}

        # 5. trust
        service = TRUSTED_SERVICE[principal_type[principal]]
        for st in statements(props.get("AssumeRolePolicyDocument")):
            if st.get("Effect") != "Allow":
                continue
            trusted = st.get("Principal")
            services = list(elements(trusted.get("Service", []))) if isinstance(trusted, dict) else []
            if not isinstance(trusted, dict) or set(trusted) != {"Service"} or services != [service]:
                errors.append(f"{where}: trust policy allows {json.dumps(trusted)}; only the service {service} may assume it")

        # 4. managed policies
        for arn in elements(props.get("ManagedPolicyArns", [])):
            errors.append(f"{where}: managed policy {render(arn)[0]} is attached; its permissions are invisible to this check (SAM adds such policies to roles it generates): write the statements out in an explicit role")

        documents: list[tuple[str, Any]] = []
        for pol in elements(props.get("Policies", [])):
            if isinstance(pol, dict):
                documents.append((f"policy {pol.get('PolicyName', '?')}", pol.get("PolicyDocument")))
        documents += [(f"policy resource {lid}", doc) for lid, doc in attached.get(role, [])]

        granted: dict[str, str] = {}  # lower-case action -> as written
        star_exceptions: set[str] = set()
        for label, doc in documents:
            for st in statements(doc):
                if st.get("Effect") != "Allow":
                    continue  # a Deny only takes away
                if "NotAction" in st or "NotResource" in st:
                    errors.append(f"{where}, {label}: NotAction/NotResource in an Allow grants everything else; list what is allowed")
                    continue
                actions = [a for a in elements(st.get("Action", [])) if isinstance(a, str)]
                # 1. wildcard actions
                for a in actions:
                    if "*" in a or "?" in a:
                        errors.append(f"{where}, {label}: action {a!r} contains a wildcard; name each action")
                    granted[a.lower()] = a
                # 2. Resource "*"
                broad = [r for node in elements(st.get("Resource", [])) for r in render(node) if is_broad_resource(r)]
                if broad:
                    for a in actions:
                        if a in RESOURCE_STAR_EXCEPTIONS:
                            star_exceptions.add(a)
                        else:
                            errors.append(f"{where}, {label}: action {a!r} is granted on Resource {broad[0]!r}; scope it to the resources it touches (Resource \"*\" is only for {', '.join(sorted({k.split(':')[0] for k in RESOURCE_STAR_EXCEPTIONS}))} actions AWS cannot scope, see RESOURCE_STAR_EXCEPTIONS)")

        # 3. drift against the allow-list
        if principal in allow:
            listed = {a.lower(): a for a in allow[principal]}
            for a in sorted(set(granted) - set(listed)):
                errors.append(f"{where}: grants {granted[a]!r}, which deploy/permissions.json does not allow for {principal}")
            for a in sorted(set(listed) - set(granted)):
                errors.append(f"{where}: deploy/permissions.json allows {listed[a]!r} for {principal}, but the template does not grant it (remove it from the allow-list, or grant it)")
        summary.append(
            f"{principal}: {len(granted)} actions"
            + (f"; Resource \"*\" only for {', '.join(sorted(star_exceptions))}" if star_exceptions else "")
        )

    # Resource-based policies.
    for lid, res in resources.items():
        rtype = res.get("Type")
        props = res.get("Properties") or {}
        if rtype in RESOURCE_POLICY_TYPES:
            node = props.get(RESOURCE_POLICY_TYPES[rtype])
            sts = list(statements(node)) if rtype != "AWS::Events::EventBusPolicy" else [s for s in elements(node) if isinstance(s, dict)]
            for st in sts:
                if st.get("Effect") != "Allow":
                    continue
                for a in elements(st.get("Action", [])):
                    if isinstance(a, str) and "*" in a:
                        errors.append(f"{lid}: resource policy allows wildcard action {a!r}")
                pr = st.get("Principal")
                if pr == "*" or (isinstance(pr, dict) and "*" in list(elements(pr.get("AWS", [])))):
                    errors.append(f"{lid}: resource policy allows any principal")
        elif rtype == "AWS::Lambda::Permission" and (
            props.get("Principal") == "*"
            or (not props.get("SourceArn") and str(props.get("Principal", "")).endswith(".amazonaws.com"))
        ):
            errors.append(f"{lid}: Lambda permission for {props.get('Principal')!r} without a SourceArn lets any such resource invoke the function")

    return errors, summary


def load_allow_list(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckError(f"{path}: cannot read the allow-list: {e}") from e
    principals = data.get("principals")
    if not isinstance(principals, dict) or not all(isinstance(v, dict) for v in principals.values()):
        raise CheckError(f"{path}: expected {{\"principals\": {{<logical id>: {{<action>: <reason>}}}}}}")
    for p, actions in principals.items():
        for a, why in actions.items():
            if not isinstance(why, str) or not why.strip():
                raise CheckError(f"{path}: {p} / {a} has no reason")
    return principals


# ---------------------------------------------------------------------------------------------
# Self-test: each mutation of the template must be caught
# ---------------------------------------------------------------------------------------------


def _role_policies(sam: dict[str, Any], role: str) -> list[Any]:
    return sam["Resources"][role]["Properties"]["Policies"]


def _mutations() -> list[tuple[str, str, Any]]:
    """(what, substring the violation must contain, in-memory edit of the SAM template)."""

    def wildcard_action(t: dict[str, Any]) -> None:
        _role_policies(t, "ValidateFunctionRole").append({
            "PolicyName": "injected",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["EventsTable", "Arn"]}}]},
        })

    def star_action(t: dict[str, Any]) -> None:
        _role_policies(t, "PersistFunctionRole")[0]["PolicyDocument"]["Statement"][0]["Action"] = "*"

    def star_resource(t: dict[str, Any]) -> None:
        for pol in _role_policies(t, "DetectFunctionRole"):
            if pol["PolicyName"] == "read-entities":
                pol["PolicyDocument"]["Statement"][0]["Resource"] = "*"

    def table_wildcard(t: dict[str, Any]) -> None:
        for pol in _role_policies(t, "DetectFunctionRole"):
            if pol["PolicyName"] == "read-entities":
                pol["PolicyDocument"]["Statement"][0]["Resource"] = {
                    "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}

    def extra_action(t: dict[str, Any]) -> None:
        for pol in _role_policies(t, "DetectFunctionRole"):
            if pol["PolicyName"] == "read-entities":
                pol["PolicyDocument"]["Statement"][0]["Action"].append("dynamodb:Scan")

    def missing_action(t: dict[str, Any]) -> None:
        for pol in _role_policies(t, "IngestFunctionRole"):
            if isinstance(pol, dict) and pol.get("PolicyName") == "start-pipeline":
                pol["PolicyDocument"]["Statement"][0]["Action"] = ["states:StartSyncExecution"]

    def conditional_wildcard(t: dict[str, Any]) -> None:
        for pol in _role_policies(t, "IngestFunctionRole"):
            if isinstance(pol, dict) and "Fn::If" in pol and pol["Fn::If"][0] == "MskEnabled":
                pol["Fn::If"][1]["PolicyDocument"]["Statement"][0]["Action"].append("kafka-cluster:*")

    def sam_generated_role(t: dict[str, Any]) -> None:
        # What a newcomer might write: SAM policy templates and a SAM-generated role.
        del t["Resources"]["DetectFunctionRole"]
        props = t["Resources"]["DetectFunction"]["Properties"]
        del props["Role"]
        props["Policies"] = [{"DynamoDBReadPolicy": {"TableName": {"Ref": "EntitiesTable"}}}]

    def named_managed_policy(t: dict[str, Any]) -> None:
        del t["Resources"]["ValidateFunctionRole"]
        props = t["Resources"]["ValidateFunction"]["Properties"]
        del props["Role"]
        props["Policies"] = ["AmazonDynamoDBReadOnlyAccess"]

    return [
        ("wildcard action dynamodb:* injected into ValidateFunction", "contains a wildcard", wildcard_action),
        ("action \"*\" in PersistFunction", "contains a wildcard", star_action),
        ("Resource \"*\" on dynamodb:GetItem in DetectFunction", "Resource '*'", star_resource),
        ("all tables (table/*) in DetectFunction", "table/*", table_wildcard),
        ("un-listed dynamodb:Scan granted to DetectFunction", "does not allow", extra_action),
        ("allow-listed states:StartExecution no longer granted to IngestFunction", "does not grant it", missing_action),
        ("wildcard inside the MSK-only (Fn::If) policy of IngestFunction", "'kafka-cluster:*' contains a wildcard", conditional_wildcard),
        ("SAM-generated role with a policy template for DetectFunction", "managed policy", sam_generated_role),
        ("managed policy by name (AmazonDynamoDBReadOnlyAccess) for ValidateFunction", "AmazonDynamoDBReadOnlyAccess", named_managed_policy),
    ]


def self_test(sam: dict[str, Any], allow: dict[str, dict[str, str]]) -> int:
    failures = 0
    errors, _ = check(sam, allow)
    if errors:
        print("self-test: FAIL: the unmodified template must pass, but:")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("self-test: ok    unmodified template passes")
    for what, expect, mutate in _mutations():
        t = copy.deepcopy(sam)
        mutate(t)
        try:
            errors, _ = check(t, allow)
        except CheckError as e:
            errors = [str(e)]
        hit = [e for e in errors if expect in e]
        if hit:
            print(f"self-test: ok    {what}: caught ({hit[0]})")
        else:
            failures += 1
            print(f"self-test: FAIL  {what}: expected a violation containing {expect!r}, got {errors or 'none'}")
    if failures:
        print(f"self-test: {failures} mutation(s) not caught")
        return 1
    print(f"self-test: passed ({len(_mutations())} injected violations caught)")
    return 0


def main() -> int:
    _ensure_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template", nargs="?", default="template.yaml", type=Path)
    ap.add_argument("--permissions", type=Path, help="allow-list (default: deploy/permissions.json next to the template)")
    ap.add_argument("--self-test", action="store_true", help="inject violations in memory and assert each is caught")
    args = ap.parse_args()
    permissions = args.permissions or args.template.resolve().parent / "deploy" / "permissions.json"
    try:
        sam = load_template(args.template)
        allow = load_allow_list(permissions)
        if args.self_test:
            return self_test(sam, allow)
        errors, summary = check(sam, allow)
    except CheckError as e:
        print(f"iam_check: {e}", file=sys.stderr)
        return 2
    if errors:
        print(f"iam_check: {len(errors)} violation(s) in {args.template}:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    for line in summary:
        print(f"iam_check: ok  {line}")
    print(f"iam_check: {args.template} is least-privilege against {permissions.relative_to(ROOT) if permissions.is_relative_to(ROOT) else permissions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
