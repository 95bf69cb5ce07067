"""Bootstraps the full local AWS run on moto: what `sam deploy` creates in AWS, created here
through the AWS APIs moto speaks, from the same files (the real ASL, the same table keys).

Used by scripts/local-aws; reads the ports and names from the environment it sets.
"""
import io
import json
import os
import sys
import urllib.request
import zipfile

import boto3

REGION = os.environ.get("AWS_REGION", "us-east-1")
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS = ["ingest", "validate", "enrich", "detect", "persist"]


def client(name):
    return boto3.client(name, region_name=REGION, endpoint_url=ENDPOINT,
                        aws_access_key_id="test", aws_secret_access_key="test")


def configure_moto():
    # Make moto's Step Functions really execute the definition (it only records by default).
    req = urllib.request.Request(
        f"{ENDPOINT}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def create_tables():
    """The three tables as deploy/tables.json defines them (the file the template is checked
    against and `pipeline run --create-tables` reads), under the names the environment sets."""
    ddb = client("dynamodb")
    existing = set(ddb.list_tables()["TableNames"])
    with open(os.path.join(ROOT, "deploy", "tables.json")) as fh:
        definitions = json.load(fh)
    names = {
        "events": os.environ["EVENTS_TABLE"],
        "entities": os.environ["ENTITIES_TABLE"],
        "quarantine": os.environ["QUARANTINE_TABLE"],
    }
    for role, name in names.items():
        spec = {k: v for k, v in definitions[role].items() if k != "LogicalId" and v}
        if name not in existing:
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)


def create_functions():
    iam = client("iam")
    role_name = "pipeline-local-role"
    try:
        role = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}))["Role"]["Arn"]
    lam = client("lambda")
    # Any zip will do: invocations never reach moto's Lambda, the router sends them to
    # `cargo lambda watch`. The functions exist so that their ARNs resolve.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    arns = {}
    for f in FUNCTIONS:
        try:
            arns[f] = lam.get_function(FunctionName=f)["Configuration"]["FunctionArn"]
        except lam.exceptions.ResourceNotFoundException:
            arns[f] = lam.create_function(FunctionName=f, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                                          Code={"ZipFile": buf.getvalue()}, Architectures=["x86_64"])["FunctionArn"]
    return role, arns


def create_buses():
    ev = client("events")
    sqs = client("sqs")
    bus = os.environ["ANOMALY_BUS_NAME"]
    try:
        ev.describe_event_bus(Name=bus)
    except ev.exceptions.ResourceNotFoundException:
        ev.create_event_bus(Name=bus)
    # A tap on the anomaly bus, so tests (and users) can read what was announced.
    q = sqs.create_queue(QueueName="pipeline-anomaly-tap")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ev.put_rule(Name="anomaly-tap", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["pipeline.anomaly"]}))
    ev.put_targets(Rule="anomaly-tap", EventBusName=bus, Targets=[{"Id": "sqs", "Arn": qarn}])
    return q


def create_state_machine(role, arns):
    sfn = client("stepfunctions")
    with open(os.path.join(ROOT, "statemachines", "pipeline.asl.json")) as fh:
        definition = fh.read()
    for f, arn in arns.items():
        definition = definition.replace(f"${{{f.capitalize()}FunctionArn}}", arn)
    name = os.environ["STATE_MACHINE_NAME"]
    for sm in sfn.list_state_machines()["stateMachines"]:
        if sm["name"] == name:
            sfn.update_state_machine(stateMachineArn=sm["stateMachineArn"], definition=definition)
            return sm["stateMachineArn"]
    # STANDARD: moto has no StartSyncExecution, so the local stack uses the Standard type,
    # which the product supports too (ingest starts and polls; see crates/aws/src/sfn.rs).
    return sfn.create_state_machine(name=name, definition=definition, roleArn=role, type="STANDARD")["stateMachineArn"]


def main():
    configure_moto()
    create_tables()
    role, arns = create_functions()
    queue = create_buses()
    sm = create_state_machine(role, arns)
    print(json.dumps({"state_machine_arn": sm, "anomaly_tap_queue": queue, "functions": arns}))


if __name__ == "__main__":
    sys.exit(main())
