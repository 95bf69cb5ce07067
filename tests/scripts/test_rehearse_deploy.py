"""The rehearsal's own rewriting (scripts/rehearse_deploy.py), without an emulator: conditions
are evaluated as CloudFormation does, what they turn off is dropped, and each workaround
changes only what it is for."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import rehearse_deploy as r  # noqa: E402

CFN = {
    "Parameters": {"Email": {"Default": ""}, "Kind": {"Default": "EXPRESS"}},
    "Conditions": {
        "HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]},
        "Express": {"Fn::Equals": [{"Ref": "Kind"}, "EXPRESS"]},
        "Both": {"Fn::And": [{"Condition": "HasEmail"}, {"Condition": "Express"}]},
    },
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Condition": "HasEmail", "Properties": {}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
            {"PolicyName": "always"},
            {"Fn::If": ["HasEmail", {"PolicyName": "mail"}, {"Ref": "AWS::NoValue"}]},
        ], "Timeout": {"Fn::If": ["Express", 360, 900]}}},
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "the-bus"}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": {"Ref": "Bus"}}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
        "Dashboard": {"Type": "AWS::CloudWatch::Dashboard",
                      "Properties": {"DashboardBody": {"Fn::Sub": "[\"${Alarm.Arn}\", \"${Bus}\"]"}}},
    },
    "Outputs": {"TopicArn": {"Condition": "HasEmail", "Value": {"Ref": "Topic"}}, "Bus": {"Value": {"Ref": "Bus"}}},
}


def params(**given):
    p = {k: v["Default"] for k, v in CFN["Parameters"].items()}
    p.update(given)
    return p


def test_conditions_follow_the_parameters():
    assert r.conditions(CFN, params()) == {"HasEmail": False, "Express": True, "Both": False}
    assert r.conditions(CFN, params(Email="a@b", Kind="STANDARD"))["HasEmail"] is True


def test_what_conditions_turn_off_is_dropped_and_the_rest_kept():
    out = r.novalue_in_lists(CFN, params())
    assert "Topic" not in out["Resources"] and "TopicArn" not in out["Outputs"]
    assert out["Resources"]["Role"]["Properties"] == {"Policies": [{"PolicyName": "always"}], "Timeout": 360}
    assert "Conditions" not in out
    on = r.novalue_in_lists(CFN, params(Email="a@b"))
    assert [p["PolicyName"] for p in on["Resources"]["Role"]["Properties"]["Policies"]] == ["always", "mail"]


def test_bus_refs_become_names_and_alarm_arns_are_built():
    out = r.alarm_arn_by_name(r.bus_refs_by_name(r.novalue_in_lists(CFN, params()), {}), {})
    assert out["Resources"]["Rule"]["Properties"]["EventBusName"] == "the-bus"
    assert out["Outputs"]["Bus"]["Value"] == "the-bus"
    body = out["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "${Alarm.Arn}" not in body and ":alarm:${Alarm}" in body
    # A ${Bus} inside a Sub string is left for CloudFormation to resolve.
    assert "${Bus}" in body
