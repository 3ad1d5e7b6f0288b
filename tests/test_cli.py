"""What the commands share: one-line errors with exit code 2, and tables in rich and markdown."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from rich.console import Console

from chargpt.cli import Table, print_table, run_command, to_markdown
from chargpt.errors import ChargptError, SettingError


def fail_with(error: BaseException):
    def body(argv: list[str]) -> None:
        raise error

    return body


def test_the_body_gets_the_arguments_and_gives_the_exit_code():
    seen = []
    assert run_command("prog", lambda argv: seen.append(argv), ["a", "b"]) == 0
    assert seen == [["a", "b"]]
    assert run_command("prog", lambda argv: 3, []) == 3


def test_a_user_error_is_one_line_and_exit_code_2(capsys):
    assert run_command("prog", fail_with(SettingError("seed=-1: must be >= 0\nmore")), []) == 2
    assert capsys.readouterr().err == "prog: error: seed=-1: must be >= 0\n"


def test_a_user_error_behind_another_is_found(capsys):
    wrapped = InstantiationException("Error in call to target")
    wrapped.__cause__ = ChargptError("model.n_head=7: must divide d_model")
    assert run_command("prog", fail_with(wrapped), []) == 2
    assert capsys.readouterr().err == "prog: error: model.n_head=7: must divide d_model\n"


def test_any_other_error_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="a bug"):
        run_command("prog", fail_with(RuntimeError("a bug")), [])


@dataclass
class Args:
    seed: int = 1


def omegaconf_error() -> Exception:
    try:
        OmegaConf.merge(OmegaConf.structured(Args), OmegaConf.from_dotlist(["seed=x"]))
    except Exception as error:
        return error
    raise AssertionError("the merge did not fail")


def test_config_errors_are_one_line_where_the_command_reads_configs(capsys):
    error = omegaconf_error()
    assert run_command("prog", fail_with(error), [], config_errors=True) == 2
    err = capsys.readouterr().err
    assert err.startswith("prog: error: ") and err.count("\n") == 1 and "seed" in err
    with pytest.raises(type(error)):
        run_command("prog", fail_with(error), [])  # a command that reads no config: a bug


def test_instantiation_errors_show_their_cause(capsys):
    wrapped = InstantiationException("Error in call to target 'x':\nTypeError(...)")
    wrapped.__cause__ = TypeError("got an unexpected keyword argument 'nope'")
    assert run_command("prog", fail_with(wrapped), [], config_errors=True) == 2
    assert capsys.readouterr().err == "prog: error: got an unexpected keyword argument 'nope'\n"


TABLE = Table(
    ["run", "params", "status"],
    [["a|b", "1.2M", "finished"], ["c", "12", "failed: nan"]],
    right=["params"],
    title="2 runs",
    note="numbers are made up",
)


def test_markdown_aligns_the_right_columns_and_escapes_pipes():
    assert to_markdown(TABLE) == (
        "| run | params | status |\n"
        "| --- | ---: | --- |\n"
        "| a\\|b | 1.2M | finished |\n"
        "| c | 12 | failed: nan |"
    )


def test_rich_table_shows_title_note_and_right_aligned_numbers():
    console = Console(record=True, width=80)
    print_table(TABLE, console)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("2 runs")
    assert any("numbers are made up" in line for line in lines)
    (params_header,) = [line for line in lines if "params" in line]
    (short,) = [line for line in lines if " 12 " in line]
    assert short.index("12") + 2 == params_header.index("params") + len("params")


def test_rich_cells_are_text_not_markup_and_a_pipe_gets_the_whole_width():
    wide = Table(["optimizer.betas", "note"], [["[0.9, 0.95]", "x" * 150], ["[bold]", "y"]])
    console = Console(record=True, width=80, force_terminal=False)
    print_table(wide, console)
    text = console.export_text()
    assert "[0.9, 0.95]" in text and "[bold]" in text
    assert "x" * 150 in text  # one line: not wrapped at the console's 80 columns
