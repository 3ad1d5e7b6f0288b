"""The sweep expander lists the jobs Hydra's basic sweeper runs, in its order."""

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the reference, tests only
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from chargpt.runs.sweep import expand_sweep


def basic_sweeper_jobs(arguments: list[str]) -> list[list[str]]:
    overrides = OverridesParser.create().parse_overrides(arguments)
    (jobs,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return jobs


def test_sweep_syntax_expands_to_every_combination_in_override_order():
    assert expand_sweep(["a=1,2", "b=x", "c=3,4"]) == [
        ["a=1", "b=x", "c=3"],
        ["a=1", "b=x", "c=4"],
        ["a=2", "b=x", "c=3"],
        ["a=2", "b=x", "c=4"],
    ]
    assert expand_sweep(["data.splits=[0.8,0.1,0.1]"]) == [["data.splits=[0.8,0.1,0.1]"]]
    assert expand_sweep([]) == [[]]


@pytest.mark.parametrize(
    "arguments",
    [
        ["model/size=tiny,small", "seed=1,2,3", "trainer.max_steps=4"],
        ["seed=1,2", "model.norm_position=pre,post", "seed=3,4"],  # a key twice: first place
        ["+x=range(3)", "~y", "z=choice(1,2)", "optimizer.betas=[0.9,0.95],[0.8,0.9]"],
        ["prompt='a b'", "k='1,2'", "w=${a}", "model@m=gpt", "++t=1.0e-3"],
    ],
)
def test_jobs_are_the_basic_sweepers(arguments):
    assert expand_sweep(arguments) == basic_sweeper_jobs(arguments)


@pytest.mark.parametrize("argument", ["experiment=glob(*)", "lr=interval(0,1)"])
def test_sweeps_it_cannot_list_are_setting_errors(argument):
    with pytest.raises(ValueError, match=r"only value lists and range"):
        expand_sweep([argument])


def test_a_malformed_override_is_hydras_parse_error():
    with pytest.raises(HydraException):
        expand_sweep(["a=[1,"])
