"""The run folder's names are spelled once, in runs/layout.py, and conf/ puts files there."""

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from chargpt.runs import layout
from chargpt.runs.compose import compose_config


def test_the_config_writes_checkpoints_and_logs_where_the_layout_says(tmp_path):
    cfg = compose_config(["logger=many"], tmp_path)
    checkpoints = cfg.callbacks.model_checkpoint
    assert Path(checkpoints.dirpath) == tmp_path / layout.CHECKPOINT_DIR
    assert checkpoints.filename + ".ckpt" == layout.BEST_CHECKPOINT
    assert checkpoints.save_last
    last = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
    assert last == layout.LAST_CHECKPOINT
    assert Path(cfg.logger.csv.save_dir) / cfg.logger.csv.name == tmp_path / layout.CSV_DIR
    assert cfg.logger.tensorboard.name == layout.TENSORBOARD_DIR
    assert Path(cfg.logger.wandb.save_dir) == tmp_path  # wandb makes its own wandb/ folder


def test_a_folder_with_any_marker_is_a_run(tmp_path):
    assert not layout.is_run_dir(tmp_path)
    (tmp_path / layout.RUN_FILE).write_text("{}")
    assert layout.is_run_dir(tmp_path)
    assert layout.last_checkpoint(tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
