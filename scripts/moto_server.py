"""moto's server, with DynamoDB transactions made cheap enough to test with.

Started by scripts/moto and scripts/local-aws instead of `moto_server` (same arguments).

moto's TransactWriteItems takes a `copy.deepcopy` of every table a transaction touches before
applying it, to roll back if a condition fails. That costs time in proportion to the table's
size on every transaction: 2,000 events through the persist stage (one transaction per entity
per batch) took 160 s, growing with each batch. Real DynamoDB has no such cost.

The snapshot below copies the table object and its item mapping (pointers to the items, not
the items), which is a faithful snapshot for transactions that only Put, ConditionCheck or
Delete: moto replaces an item on Put and removes it on Delete, it never changes one in place.
An Update does change the item in place, and its rollback would not be undone here; the
pipeline's store sends no Update in a transaction.
The snapshot is made without moto's model constructor, which keeps every instance it makes
for the whole server's life: made with `copy.copy`, every transaction's snapshot stayed, and a
backfill of 20 × 1,000 events took moto to 7.7 GB (20 × 5,000 did not fit in 24 GB); now 0.8 GB.

moto's server handles requests on several threads, and a cancelled transaction restores the
tables it touched *whole*, from the snapshot it took before applying: any write another thread
made meanwhile (another transaction on other items, a plain put) is undone with it, so records
silently disappear under concurrent writers, which real DynamoDB isolates. Writes therefore
run one at a time here, which is what DynamoDB's serialisable transactions look like from
outside. A Step Functions AWS SDK integration that calls S3 GetObject gets the object's body as a string
on AWS (`aws-sdk:s3:getObject`, used by statemachines/backfill.asl.json); moto 5.2.5 hands the
state botocore's stream instead, which `States.StringToJson` cannot read. The body is read into
a string here, as AWS returns it.

The optimised Step Functions integration (`states:startExecution.sync:2`, the backfill's
RunBatch) takes and returns the API's fields in PascalCase (`StateMachineArn`, `Output`); moto
5.2.5 hands the PascalCase parameters to botocore unchanged, which refuses them, and reads the
response's PascalCase fields from botocore's camelCase ones. The names are translated here, as
the service does, and `AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID` (which links the child to its
parent execution on AWS) is dropped, as moto keeps no such link.

`DescribeMapRun` looks for the run in every execution's environment, and fails (HTTP 500) at the
first execution whose environment is gone, which is any finished one; here it skips those.

Everything else is moto as installed.
"""

import copy
import functools
import sys
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.server import main
from moto.stepfunctions.parser import models as sfn_models
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk_task,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn as sfn_task,
)


def _snapshot(obj, memo=None):
    if isinstance(obj, Table):
        # Not `copy.copy`: that goes through moto's `BaseModel.__new__`, which appends every
        # instance to a class-wide list for its reset, so each snapshot (and its item
        # mapping) lived as long as the server.
        snap = object.__new__(Table)
        snap.__dict__.update(obj.__dict__)
        items = copy.copy(obj.items)
        if obj.has_range_key:
            for key, by_range in items.items():
                items[key] = dict(by_range)
        snap.items = items
        return snap
    return copy.deepcopy(obj, memo)


# The models module reaches `copy.deepcopy` through its own `copy` name: give it one whose
# deepcopy snapshots tables as above and deep-copies anything else as before.
dynamodb_models.copy = types.SimpleNamespace(deepcopy=_snapshot, copy=copy.copy)

_WRITES = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _WRITES:
            return method(*args, **kwargs)

    return wrapper


for _name in (
    "transact_write_items",
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
):
    if hasattr(dynamodb_models.DynamoDBBackend, _name):
        setattr(
            dynamodb_models.DynamoDBBackend,
            _name,
            _serialised(getattr(dynamodb_models.DynamoDBBackend, _name)),
        )

def _bodies_as_strings(method):
    @functools.wraps(method)
    def wrapper(self, env, *args, **kwargs):
        result = method(self, env, *args, **kwargs)
        response = env.stack[-1] if env.stack else None
        body = response.get("Body") if isinstance(response, dict) else None
        if hasattr(body, "read"):
            response["Body"] = body.read().decode("utf-8")
        return result

    return wrapper


aws_sdk_task.StateTaskServiceAwsSdk._eval_service_task = _bodies_as_strings(
    aws_sdk_task.StateTaskServiceAwsSdk._eval_service_task
)

_STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"


def _camel_parameters(method):
    @functools.wraps(method)
    def wrapper(self, parameters, *args, **kwargs):
        method(self, parameters, *args, **kwargs)
        parameters.pop(_STARTED_BY, None)
        for key in list(parameters):
            if key[:1].isupper():
                parameters[key[:1].lower() + key[1:]] = parameters.pop(key)

    return wrapper


def _pascal_response(method):
    @functools.wraps(method)
    def wrapper(self, response, *args, **kwargs):
        method(self, response, *args, **kwargs)
        if isinstance(response, dict):
            for key in list(response):
                if key[:1].islower():
                    response[key[:1].upper() + key[1:]] = response.pop(key)

    return wrapper


sfn_task.StateTaskServiceSfn._normalise_parameters = _camel_parameters(
    sfn_task.StateTaskServiceSfn._normalise_parameters
)
sfn_task.StateTaskServiceSfn._normalise_response = _pascal_response(
    sfn_task.StateTaskServiceSfn._normalise_response
)

def _describe_map_run(self, map_run_arn):
    for execution in self._get_executions():
        env = getattr(getattr(execution, "exec_worker", None), "env", None)
        record = env.map_run_record_pool_manager.get(map_run_arn) if env is not None else None
        if record is not None:
            return record.describe()
    raise sfn_models.ResourceNotFound()


sfn_models.StepFunctionsParserBackend.describe_map_run = _describe_map_run

if __name__ == "__main__":
    sys.exit(main())
