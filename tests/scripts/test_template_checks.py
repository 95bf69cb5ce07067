"""The template checks of scripts/template_checks.py pass on the real template and catch the
drift each exists for, on copies of the template with one thing changed."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import template_checks  # noqa: E402

TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    # The checks read paths relative to the repository, as scripts/check-template runs them.
    monkeypatch.chdir(ROOT)


def changed(tmp_path, old, new):
    text = TEMPLATE.read_text()
    assert old in text, f"the template no longer contains {old!r}: update this test"
    path = tmp_path / "template.yaml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize("check", ["sanity", "asl", "tables"])
def test_the_real_template_passes(check, capsys):
    getattr(template_checks, check)(str(TEMPLATE))
    assert "FAIL" not in capsys.readouterr().out


def test_tables_catch_an_index_that_drifted_from_deploy_tables_json(tmp_path, capsys):
    bad = changed(tmp_path, "AttributeName: occurred_at, KeyType: RANGE", "AttributeName: event_id, KeyType: RANGE")
    with pytest.raises(SystemExit):
        template_checks.tables(bad)
    out = capsys.readouterr().out
    assert "FAIL: EventsTable.GlobalSecondaryIndexes" in out
    assert "ok: EventsTable" not in out


def test_sanity_catches_a_yaml_boolean_among_allowed_values(tmp_path, capsys):
    bad = changed(tmp_path, 'AllowedValues: ["true", "false"]', "AllowedValues: [true, false]")
    with pytest.raises(SystemExit):
        template_checks.sanity(bad)
    assert "YAML boolean" in capsys.readouterr().out


def test_asl_catches_a_substitution_the_definition_never_uses(tmp_path, capsys):
    bad = changed(
        tmp_path,
        "PersistFunctionArn: !GetAtt PersistFunction.Arn",
        "PersistFunctionArn: !GetAtt PersistFunction.Arn\n        UnusedFunctionArn: !GetAtt PersistFunction.Arn",
    )
    with pytest.raises(SystemExit):
        template_checks.asl(bad)
    assert "substitutes UnusedFunctionArn" in capsys.readouterr().out


def test_asl_catches_a_function_that_outlives_its_task(tmp_path, capsys):
    bad = changed(tmp_path, "      Timeout: 50", "      Timeout: 5000")
    with pytest.raises(SystemExit):
        template_checks.asl(bad)
    assert "may run 5000 s" in capsys.readouterr().out
