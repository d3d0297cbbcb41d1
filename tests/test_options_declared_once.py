"""Every decoding option is declared once (zoo.inputs.OPTIONS): the CLI's flags, the server's
OpenAPI request fields, the export manifest's decoding keys and docs/inputs.md come from it."""

import os

import pytest

from zoo import cli, inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(command):
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    return {a.dest: a for a in sub._actions}


@pytest.mark.parametrize("command", ["translate", "summarize", "evaluate"])
def test_cli_decoding_flags_come_from_the_declaration(command):
    flags = _flags(command)
    for name in cli.CLI_DECODING:
        option = inputs.OPTION[name]
        assert flags[name].type is option.kind
        assert option.range_text in flags[name].help and option.help in flags[name].help


def test_server_request_fields_come_from_the_declaration():
    from fastapi.testclient import TestClient  # noqa: F401  (the serve extra is installed)

    from zoo.serving import server

    request = server._schemas()[0].model_json_schema()["properties"]
    for name in server.DECODING_FIELDS:
        option, field = inputs.OPTION[name], request[name]["anyOf"][0]
        assert field["type"] == {int: "integer", float: "number"}[option.kind]
        assert field.get("minimum", field.get("exclusiveMinimum")) == option.low
        assert field["maximum"] == option.high
    assert set(server.DECODING_FIELDS) == {"max_length", *inputs.EXPORT_OPTIONS}


def test_manifest_decoding_keys_come_from_the_declaration(tiny_exports):
    import json

    _, root = tiny_exports
    for fmt in ("onnx", "savedmodel", "litert"):
        decoding = json.load(open(root / fmt / "manifest.json"))["decoding"]
        assert set(decoding) - {"strategies"} == set(inputs.EXPORT_OPTIONS), fmt
        for name in inputs.EXPORT_OPTIONS:
            inputs.OPTION[name].check(decoding[name])  # in range


def test_docs_tables_are_generated_from_the_declarations():
    doc = open(os.path.join(ROOT, "docs", "inputs.md")).read()
    assert inputs.options_table() in doc and inputs.numbers_table() in doc


@pytest.mark.parametrize("option", inputs.NUMBERS, ids=lambda o: o.name)
def test_every_cli_number_is_checked_against_its_range(option, capsys):
    command = option.strategies[0]
    argv = {"train": ["train", "summarizer"], "export": ["export", "--model", "M", "--out", "O"],
            "translate": ["translate", "--model", "M", "x"],
            "evaluate": ["evaluate"]}[command]
    too_big = (option.high or 0) * 10 + 1
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv + [f"--{option.name.replace('_', '-')}", str(too_big)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option.range_text in err and option.name in err, err


def test_out_of_range_flag_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["translate", "--model", "/nonexistent", "--max-length", "4294967301", "x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max-length" in err and "[1, 1024]" in err and "nonexistent" not in err
