"""A run's variant: its overrides less the seed and where files go."""

from __future__ import annotations

from chargpt.runs.variant import (
    DEFAULT_VARIANT,
    LABEL_MAX_CHARS,
    folder_label,
    is_setting,
    run_label,
    variant_name,
)


def test_the_seed_and_paths_are_not_part_of_the_variant():
    overrides = [
        "seed=2",
        "model.tie_weights=false",
        "hydra.run.dir=/tmp/x",
        "logger=csv",
        "+data.seed=4",
        "model.norm_position=post",
        "paths.output_dir=/o",
        "ckpt_path=last",
    ]
    assert variant_name(overrides) == "model.norm_position=post,model.tie_weights=false"


def test_runs_of_other_seeds_share_a_variant_and_other_settings_do_not():
    assert variant_name(["seed=1", "model/size=tiny"]) == variant_name(
        ["model/size=tiny", "seed=9"]
    )
    assert variant_name(["model/size=tiny"]) != variant_name(["model/size=small"])


def test_a_run_of_defaults_is_the_default_variant():
    assert variant_name(["seed=5", "hydra.sweep.dir=/s"]) == DEFAULT_VARIANT


def test_settings_and_not_settings():
    assert is_setting("model.n_layer") and is_setting("model/size") and is_setting("seed")
    assert not is_setting("logger.wandb.name") and not is_setting("callbacks.ckpt.dirpath")


def test_the_logger_choice_and_its_settings_are_not_settings():
    assert not is_setting("logger") and not is_setting("logger.wandb.project")
    assert variant_name(["logger=csv", "model/size=tiny"]) == "model/size=tiny"


def test_a_run_is_labelled_by_its_settings_seed_included_after_its_job_number():
    overrides = ["model/size=tiny", "seed=2", "hydra.run.dir=/x", "logger=many", "ckpt_path=last"]
    assert run_label(overrides) == "model/size=tiny,seed=2"
    assert run_label(overrides, job_num=3) == "3-model/size=tiny,seed=2"
    assert run_label(["paths.data_dir=/d"]) == DEFAULT_VARIANT


def test_a_label_becomes_one_folder_name_and_long_ones_stay_apart():
    assert folder_label("0-model/size=tiny,seed=1") == "0-model_size=tiny,seed=1"
    assert folder_label("..") == DEFAULT_VARIANT
    long_a = "data.path=/" + "a" * 300 + ",seed=1"
    long_b = "data.path=/" + "a" * 300 + ",seed=2"
    names = {folder_label(long_a), folder_label(long_b)}
    assert len(names) == 2
    assert all(len(name) <= LABEL_MAX_CHARS and "/" not in name for name in names)
