"""What the full local AWS run adds on moto to the stack template.yaml created there
(scripts/rehearse_deploy.py --keep): moto set to execute state machine definitions (and the
stack's state machines (pipeline and backfill) registered where that happens), and a tap on the anomaly bus (a rule and a
queue), so that tests and users can read what was announced. Everything the product runs on
comes from the stack.

Used by scripts/local-aws; reads the ports and names from the environment it sets.
"""
import json
import os
import sys
import urllib.request

import boto3

REGION = os.environ.get("AWS_REGION", "us-east-1")
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]


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


def register_state_machine(path, key="state_machine"):
    """moto, once set to execute definitions, serves Step Functions from another backend than
    the one its CloudFormation created the stack's state machine in: the machine is not found.
    The local stack registers it there again, as the stack made it (same name, so the same ARN
    as the stack's output; same definition, role, type and logging). A gap of moto 5.2.5's;
    scripts/rehearse_deploy.py checks the stack itself before this."""
    with open(path) as fh:
        m = json.load(fh)[key]
    sfn = client("stepfunctions")
    args = {"name": m["name"], "definition": m["definition"], "roleArn": m["roleArn"], "type": m["type"]}
    if m.get("loggingConfiguration"):
        args["loggingConfiguration"] = m["loggingConfiguration"]
    return sfn.create_state_machine(**args)["stateMachineArn"]


def create_anomaly_tap():
    ev = client("events")
    sqs = client("sqs")
    bus = os.environ["ANOMALY_BUS_NAME"]
    # A tap on the stack's anomaly bus, so tests (and users) can read what was announced.
    q = sqs.create_queue(QueueName="pipeline-anomaly-tap")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ev.put_rule(Name="anomaly-tap", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["pipeline.anomaly"]}))
    ev.put_targets(Rule="anomaly-tap", EventBusName=bus, Targets=[{"Id": "sqs", "Arn": qarn}])
    return q


def main():
    # `configure` after the stack is created and checked, `register` its state machines in the
    # executing backend, `tap` the anomaly bus it made.
    args = sys.argv[1:]
    if args == ["configure"]:
        configure_moto()
    elif len(args) == 2 and args[0] == "register":
        # The pipeline's machine first: the backfill's definition names it.
        print(json.dumps({"state_machine_arn": register_state_machine(args[1]),
                          "backfill_state_machine_arn": register_state_machine(args[1], "backfill_state_machine")}))
    elif args == ["tap"]:
        print(json.dumps({"anomaly_tap_queue": create_anomaly_tap()}))
    else:
        sys.exit("usage: local_aws.py configure | register STACK_JSON | tap")


if __name__ == "__main__":
    sys.exit(main())
