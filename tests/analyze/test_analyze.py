"""The analyzer's figures match the models: parameter counts, and the tensors saved for backward."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import NEWER_VARIANTS
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel

from chargpt.analyze.__main__ import main
from chargpt.analyze.estimates import compare_tying, count_parameters, estimate_memory
from chargpt.model import GPT, GPTConfig
from chargpt.model.parameters import num_parameters

SIZE_DIR = Path(__file__).resolve().parents[2] / "conf" / "model" / "size"
PRESETS = sorted(p.stem for p in SIZE_DIR.glob("*.yaml"))
VOCAB = 11


def preset_config(preset: str, **variant) -> GPTConfig:
    size = OmegaConf.load(SIZE_DIR / f"{preset}.yaml")
    return GPTConfig(
        vocab_size=VOCAB,
        block_size=16,
        n_layer=size.n_layer,
        n_head=size.n_head,
        d_model=size.d_model,
        **variant,
    )


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("preset", PRESETS)
def test_parameter_figures_match_the_model(preset, tie_weights, norm, mlp, pos_encoding):
    config = preset_config(
        preset, tie_weights=tie_weights, norm=norm, mlp=mlp, pos_encoding=pos_encoding
    )
    model = GPT(config)
    counted = count_parameters(config)
    assert counted.total == num_parameters(model)
    assert sum(counted.components.values()) == num_parameters(model)
    tying = compare_tying(config)
    assert tying.saving == VOCAB * config.d_model
    assert (tying.tied if tie_weights else tying.untied).total == num_parameters(model)
    memory = estimate_memory(config, batch_size=4)
    assert memory.parameters == memory.gradients == 4 * num_parameters(model)
    assert memory.optimizer == 2 * 4 * num_parameters(model)


@pytest.mark.parametrize("preset", PRESETS)
def test_post_norm_has_no_final_norm_parameters(preset):
    config = preset_config(preset, norm_position="post")
    pre = count_parameters(preset_config(preset, norm_position="pre"))
    post = count_parameters(config)
    assert pre.components["norms"] - post.components["norms"] == 2 * config.d_model  # w + b
    assert post.total == num_parameters(GPT(config))


def saved_tensor_bytes(model: GPT, batch: int, context: int, autocast: bool) -> int:
    """Bytes the forward pass saves for backward: distinct storages, parameters left out."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    idx, targets = torch.randint(0, VOCAB, (2, batch, context))
    with (
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
    ):
        model(idx, targets)
    return sum(storages.values())


def tiny_config(**variant) -> GPTConfig:
    return GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, d_model=16, **variant)


# Measured on a CPU: bf16-mixed as a CPU runs it (attention in fp32; the GPU's bf16-mixed keeps
# bf16 q, k, v, the same tensors at 2 bytes).
@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed-cpu"])
@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_activation_estimate_equals_the_saved_tensors(
    norm_position, norm, mlp, pos_encoding, precision
):
    config = tiny_config(norm_position=norm_position, norm=norm, mlp=mlp, pos_encoding=pos_encoding)
    model = GPT(config).train()
    memory = estimate_memory(config, batch_size=3, context=12, precision=precision)
    measured = saved_tensor_bytes(model, 3, 12, autocast=precision != "fp32")
    # Autocast's 16-bit weight copies are saved for backward too.
    assert measured == memory.activation_total + memory.weight_copies


NEW_VARIANTS = [
    *NEWER_VARIANTS,
    dict(norm_position="peri", norm="rmsnorm"),
    dict(pos_encoding="rope", qk_norm=True, n_kv_head=1),
    dict(pos_encoding="alibi", qk_norm=True, n_kv_head=1, norm_position="peri", mlp="relu2"),
]


@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed-cpu"])
@pytest.mark.parametrize("variant", NEW_VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_activation_estimate_equals_the_saved_tensors_of_the_newer_variants(variant, precision):
    config = tiny_config(**variant)
    model = GPT(config).train()
    memory = estimate_memory(config, batch_size=3, context=12, precision=precision)
    measured = saved_tensor_bytes(model, 3, 12, autocast=precision != "fp32")
    assert measured == memory.activation_total + memory.weight_copies


@pytest.mark.parametrize("variant", NEW_VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_parameter_figures_of_the_newer_variants_match_the_model(variant):
    config = preset_config("small", **variant)
    counted = count_parameters(config)
    assert counted.total == num_parameters(GPT(config))


def test_muon_keeps_one_state_per_hidden_matrix_element_and_adamw_two_for_the_rest():
    from chargpt.training.optim import OptimizerConfig, build_optimizer

    config = tiny_config(tie_weights=False)
    model = GPT(config)
    optimizer = build_optimizer(model, OptimizerConfig(algorithm="muon"))
    model(*torch.randint(0, VOCAB, (2, 2, 8)))[1].backward()
    optimizer.step()
    state_bytes = sum(
        t.nbytes for s in optimizer.state.values() for k, t in s.items() if k != "step"
    )
    assert estimate_memory(config, batch_size=2, optimizer="muon").optimizer == state_bytes
    assert estimate_memory(config, batch_size=2).optimizer == 2 * 4 * num_parameters(model)


def test_math_path_stores_the_attention_matrices():
    config = tiny_config()
    model = GPT(config).train()
    memory = estimate_memory(config, batch_size=3, context=12)
    with sdpa_kernel(SDPBackend.MATH):
        measured = saved_tensor_bytes(model, 3, 12, autocast=False)
    log_sum_exp = config.n_layer * 3 * config.n_head * 12 * 4  # kept by the fused kernels only
    assert measured == memory.activation_total - log_sum_exp + memory.attention_matrices
    assert memory.attention_matrices == config.n_layer * 3 * config.n_head * 12 * 12 * 4


def test_attention_matrices_grow_with_the_square_of_the_context():
    config = tiny_config()
    short, long = (estimate_memory(config, 2, context=t) for t in (64, 128))
    assert long.attention_matrices == 4 * short.attention_matrices
    assert long.activation_total < 2 * short.activation_total + 1024  # linear (+ constants)
    assert long.attention_share > short.attention_share


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(batch_size=2, context=-1), "context=-1"),
        (dict(batch_size=2, precision="fp8"), "precision='fp8'"),
    ],
)
def test_estimate_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        estimate_memory(tiny_config(), **arguments)


def run_cli(tmp_path: Path, monkeypatch, *argv: str) -> dict:
    monkeypatch.chdir(tmp_path)
    assert main(list(argv)) == 0
    return json.loads((tmp_path / "analysis" / "summary.json").read_text())


def test_cli_analyses_every_preset_prints_tables_and_writes_plots(tmp_path, monkeypatch, capsys):
    summary = run_cli(tmp_path, monkeypatch)
    out = capsys.readouterr().out
    names = [c["name"] for c in summary["configs"]]
    assert names == ["tiny", "small", "medium", "large"]  # smallest first
    for entry in summary["configs"]:
        config = GPTConfig(**entry["model"])
        assert config.vocab_size == 65 and config.tie_weights
        assert entry["parameters"]["tied"]["total"] == num_parameters(GPT(config))
        assert f"{entry['parameters']['tied']['total']:,}" in out
    for title in ("Parameters by component", "Training memory", "against context length"):
        assert title in out
    for name in ("parameters.png", "memory.png", "attention_memory.png"):
        assert (tmp_path / "analysis" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![memory.png](memory.png)" in (tmp_path / "analysis" / "summary.md").read_text()


def test_cli_takes_run_py_overrides_for_one_config(tmp_path, monkeypatch):
    out = tmp_path / "figures"
    monkeypatch.chdir(tmp_path)
    argv = ["model/size=medium", "model.tie_weights=false", "data.batch_size=64", "trainer=gpu"]
    assert main([*argv, "--out", str(out), "--contexts", "32,128"]) == 0
    (entry,) = json.loads((out / "summary.json").read_text())["configs"]
    config = GPTConfig(**entry["model"])
    assert (entry["name"], config.d_model, config.tie_weights) == ("medium", 256, False)
    assert (entry["batch_size"], entry["precision"]) == (64, "bf16-mixed")
    expected = estimate_memory(config, 64, precision="bf16-mixed")
    assert entry["memory"]["total"] == expected.total
    assert entry["memory"]["parameters"] == 4 * num_parameters(GPT(config))
    assert entry["memory"]["weight_copies"] > 0
    assert list(entry["by_context"]) == ["32", "64", "128"]  # the config's block_size added


def test_cli_reports_the_variants_kv_cache_saving_and_muon_state(tmp_path, monkeypatch, capsys):
    summary = run_cli(
        tmp_path,
        monkeypatch,
        "model/size=small",
        "model.n_kv_head=2",
        "model.pos_encoding=rope",
        "model.qk_norm=true",
        "optimizer=muon",
    )
    (entry,) = summary["configs"]
    config = GPTConfig(**entry["model"])
    assert (config.n_kv_head, config.pos_encoding, config.qk_norm) == (2, "rope", True)
    assert entry["optimizer"] == "muon"
    assert entry["parameters"]["tied"]["total"] == num_parameters(GPT(config))
    # 4 layers x (keys, values) x 2 heads x 64 positions x 16 channels x 4 bytes
    assert entry["kv_cache_bytes_per_sequence"] == 4 * 2 * 2 * 64 * 16 * 4 == 65536
    out = capsys.readouterr().out
    assert "KV cache for generation" in out and "2 of 8" in out
    assert "192.0 KiB (75%)" in out  # 256 KiB with 8 heads of keys and values


def test_cli_dimension_overrides_describe_one_custom_config(tmp_path, monkeypatch):
    summary = run_cli(
        tmp_path, monkeypatch, "model.d_model=32", "model.n_head=2", "model.vocab_size=7"
    )
    (entry,) = summary["configs"]
    assert entry["name"] == "custom"
    assert (entry["model"]["d_model"], entry["model"]["vocab_size"]) == (32, 7)
    assert entry["parameters"]["tying_saving"] == 7 * 32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model/size=huge"], "model/size=huge: unknown preset"),
        (["data.batch_size=0"], "data.batch_size=0"),
        (["model.n_head=7"], "model.n_head=7"),
        (["model.vocab_size=0"], "model.vocab_size=0"),
        (["model.nope=1"], "model.nope"),
        (["trainer.precision=16-true"], "trainer.precision='16-true'"),
        (["--contexts", "0,64"], "must be positive"),
        (["--bogus"], "--bogus"),
        (["model.compile=true"], "model.compile is now compile"),
        (["trainer.val_check_interval=5"], "is now trainer.val_every_n_steps"),
    ],
)
def test_cli_bad_argument_is_one_line_and_non_zero(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.startswith("chargpt.analyze: error: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "analysis").exists()


def test_module_entry_point_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "chargpt.analyze", "model/size=huge"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "unknown preset" in result.stderr


def test_analysis_computation_imports_neither_hydra_nor_plotting():
    code = (
        "import sys, chargpt.analyze.estimates\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'hydra', 'matplotlib', 'rich'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
