"""The training benchmarks run end to end on a tiny model and write what they measured.

No timing is asserted: the figures depend on the machine. The tests check that the commands
work, that every config and loop is measured, and that the derived figures are consistent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import PROJECT_ROOT

from chargpt.bench.__main__ import main
from chargpt.bench.flops import mfu
from chargpt.bench.hardware import measure_matmul_peak, peak_flops
from chargpt.model import GPT, GPTConfig
from chargpt.model.parameters import matmul_parameters, training_flops_per_token

QUICK = ["--steps", "2", "--warmup", "1", "--rounds", "1"]


@pytest.fixture
def tiny_overrides(play_file) -> list[str]:
    return [
        "data=text",
        f"data.path={play_file}",
        "model/size=tiny",
        "model.block_size=16",
        "data.batch_size=4",
        "logger=csv",
    ]


def test_train_benchmark_writes_a_row_per_config(tmp_path, capsys, tiny_overrides):
    out = tmp_path / "bench"
    main(["train", *tiny_overrides, "model.n_layer=1,2", *QUICK, "--out", str(out)])
    table = capsys.readouterr().out
    assert "model.n_layer=1 |" in table and "model.n_layer=2 |" in table
    report = json.loads((out / "train.json").read_text())
    assert (out / "train.md").read_text().strip() == table.strip()
    first, second = report["results"]
    assert (first["preset"], second["preset"]) == ("1/4/64", "2/4/64")
    assert first["flops_per_token"] < second["flops_per_token"]
    for result in report["results"]:
        assert result["loop"] == "lightning"
        assert result["tokens_per_step"] == 4 * 16
        assert len(result["step_times_s"]) == 1 and len(result["step_times_s"][0]) == 2
        assert result["tokens_per_s"] == pytest.approx(64 / (result["median_ms"] / 1000))
        assert result["mfu"] == pytest.approx(
            result["flops_per_token"] * result["tokens_per_s"] / report["peak_flops_per_s"]
        )
        assert 0 < result["batch_draw_share"] < 1


def test_train_is_the_default_subcommand(tmp_path, tiny_overrides):
    main([*tiny_overrides, "--loop", "plain", *QUICK, "--out", str(tmp_path)])
    (result,) = json.loads((tmp_path / "train.json").read_text())["results"]
    assert result["loop"] == "plain"


def test_overhead_compares_each_loop_with_the_plain_one(tmp_path, capsys, tiny_overrides):
    main(["overhead", *tiny_overrides, *QUICK, "--out", str(tmp_path)])
    assert "Tokens/s relative to the plain loop" in capsys.readouterr().out
    report = json.loads((tmp_path / "overhead.json").read_text())
    assert set(report["ratios_vs_plain"]) == {"plain", "lightning", "lightning-configured"}
    assert report["ratios_vs_plain"]["plain"] == 1.0
    assert all(len(times) == 1 for times in report["step_times_s"].values())


def test_generate_subcommand_is_dispatched(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--help"])
    assert exit_.value.code == 0
    assert "python -m chargpt.bench generate" in capsys.readouterr().out


@pytest.mark.parametrize("tied", [True, False])
def test_flops_per_token_formula(tied):
    config = GPTConfig(
        vocab_size=10, block_size=8, n_layer=2, n_head=2, d_model=16, tie_weights=tied
    )
    model = GPT(config)
    per_block = (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16)
    assert matmul_parameters(model) == 2 * per_block + 10 * 16  # the head, tied or not
    assert training_flops_per_token(model) == 6 * (2 * per_block + 160) + 12 * 2 * 16 * 8
    assert training_flops_per_token(model, context=4) < training_flops_per_token(model)
    assert mfu(100, 10, 2000) == 0.5


def test_cpu_peak_is_measured():
    rate = measure_matmul_peak(torch.device("cpu"), size=64, repeats=2)
    assert rate > 0
    assert peak_flops(torch.device("cpu")).source == "measured fp32 matmul"


@pytest.mark.slow
def test_the_gpu_check_rehearses_every_path_on_the_cpu(tmp_path, shared_data_dir):
    """`make gpu-check` as CI can run it: the same commands, shrunk, on the CPU."""
    script = PROJECT_ROOT / "benchmarks" / "gpu_check.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--rehearse-on-cpu",
            "--out",
            str(tmp_path),
            "--data-dir",
            shared_data_dir,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    table = (tmp_path / "gpu_check.md").read_text()
    for name in (
        "trainer=gpu",
        "trainer=gpu compiled",
        "sample bf16",
        "variants: rope, qk_norm, gqa, peri, relu2, muon",
        "variants: alibi, gqa, deepnorm",
        "trainer=ddp devices=1",
        "experiment=baby_gpt, 300 steps",
        "bench trainer=gpu medium",
    ):
        assert f"| {name} | ok |" in table


def test_the_gpu_check_runs_the_paths_it_promises():
    script = PROJECT_ROOT / "benchmarks" / "gpu_check.py"
    result = subprocess.run(
        [sys.executable, str(script), "--dry-run", "--out", "OUT"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    commands = result.stdout.splitlines()
    assert commands == [
        "python run.py trainer=gpu trainer.max_steps=200 logger=csv hydra.run.dir=OUT/small",
        "python run.py trainer=gpu compile=true trainer.max_steps=200 logger=csv "
        "hydra.run.dir=OUT/small-compiled",
        "python -m chargpt.sample ckpt=OUT/small/checkpoints/best.ckpt device=cuda "
        "dtype=bfloat16 num_samples=4 max_new_tokens=300",
        "python run.py trainer=gpu model.pos_encoding=rope model.qk_norm=true model.n_kv_head=2 "
        "model.norm_position=peri model.mlp=relu2 optimizer=muon trainer.max_steps=100 logger=csv "
        "hydra.run.dir=OUT/variants-rope-muon",
        "python run.py trainer=gpu model.pos_encoding=alibi model.n_kv_head=2 "
        "model.norm_position=deepnorm trainer.max_steps=100 logger=csv "
        "hydra.run.dir=OUT/variants-alibi",
        "python run.py trainer=ddp trainer.devices=1 trainer.max_steps=100 logger=csv "
        "hydra.run.dir=OUT/ddp-1",
        "python run.py experiment=baby_gpt trainer.max_steps=300 scheduler.decay_steps=5000 "
        "test_after_training=false logger=csv hydra.run.dir=OUT/baby_gpt-300",
        "python -m chargpt.bench trainer=gpu model/size=medium --out OUT/bench",
    ]
