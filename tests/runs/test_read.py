"""A run folder read back for compare."""

import yaml

from chargpt.runs.read import load_run_dir, read_metrics


def test_a_folder_written_before_a_key_moved_reads_under_todays_keys(tmp_path):
    (tmp_path / ".hydra").mkdir()
    config = {"model": {"compile": True, "n_layer": 2}, "trainer": {"val_check_interval": 5}}
    (tmp_path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model.compile=true\n")
    run = load_run_dir(tmp_path)
    assert run.settings == {"compile": True, "model.n_layer": 2, "trainer.val_every_n_steps": 5}
    assert run.overridden == ["compile"]


METRICS_CSV = """\
step,train/loss,val/loss,perf/training_s
10,3.5,,1.0
10,,3.4,
20,3.1,,2.0
20,nan,,
30,not a number,,
x,2.9,,
40,2.7,2.8,4.0
50,2.6
6"""  # a NaN, garbage, a row without a step, and the last row cut short by a running job


def test_the_train_curve_is_read_from_metrics_csv_skipping_what_is_not_a_point(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(METRICS_CSV, encoding="utf-8")
    run = load_run_dir(tmp_path)
    assert run.train_curve == [(10, 3.5), (20, 3.1), (40, 2.7), (50, 2.6)]
    assert run.val_curve == [(10, 3.4), (40, 2.8)]
    assert run.time_curve == [(10, 1.0), (20, 2.0), (40, 4.0)]
    assert read_metrics(tmp_path)[:3] == (run.val_curve, run.train_curve, run.time_curve)


def test_the_train_curve_is_read_from_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tensorboard" / "0-model.n_layer=2"))
    for step, loss in ((10, 3.5), (20, float("nan")), (30, 3.0), (40, 2.5)):
        writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("val/loss", 2.75, 40)
    writer.close()
    run = load_run_dir(tmp_path)
    assert run.train_curve == [(10, 3.5), (30, 3.0), (40, 2.5)]
    assert run.val_curve == [(40, 2.75)] and run.best_val_loss == 2.75
    assert run.time_curve == []


def test_a_folder_without_metrics_has_no_curves(tmp_path):
    assert read_metrics(tmp_path) == ([], [], [], {})
    run = load_run_dir(tmp_path)
    assert run.val_curve == run.train_curve == run.time_curve == []


def test_a_garbled_metrics_csv_keeps_the_rows_before_the_damage(tmp_path):
    """Bad bytes or a NUL (a disk that failed mid-write) end the reading, not the comparison."""
    (tmp_path / "csv").mkdir()
    damaged = METRICS_CSV.encode() + b"\xff\xfe\x00garbage,\x00\n"
    (tmp_path / "csv" / "metrics.csv").write_bytes(damaged)
    val_curve, train_curve, _, _ = read_metrics(tmp_path)
    (tmp_path / "csv" / "metrics.csv").write_text(METRICS_CSV, encoding="utf-8")
    assert (val_curve, train_curve) == read_metrics(tmp_path)[:2]
