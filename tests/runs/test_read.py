"""A run folder read back for compare."""

import yaml

from chargpt.runs.read import load_run_dir


def test_a_folder_written_before_a_key_moved_reads_under_todays_keys(tmp_path):
    (tmp_path / ".hydra").mkdir()
    config = {"model": {"compile": True, "n_layer": 2}, "trainer": {"val_check_interval": 5}}
    (tmp_path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model.compile=true\n")
    run = load_run_dir(tmp_path)
    assert run.settings == {"compile": True, "model.n_layer": 2, "trainer.val_every_n_steps": 5}
    assert run.overridden == ["compile"]
