"""A run's variant: its overrides less the seed and where files go."""

from __future__ import annotations

from chargpt.runs.variant import DEFAULT_VARIANT, is_setting, variant_name


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
