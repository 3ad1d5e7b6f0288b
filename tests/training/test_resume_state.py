"""A checkpoint's training state is checked before Lightning restores it (a crafted one crashed)."""

from __future__ import annotations

import pytest
import torch

from chargpt.runs.checkpoint import CheckpointError
from chargpt.training.module import GPTLightningModule
from chargpt.training.resume_state import check_training_state


def module_of(checkpoint: dict) -> GPTLightningModule:
    return GPTLightningModule(**checkpoint["hyper_parameters"])


def crafted(tmp_path, trained_checkpoint, change) -> tuple:
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["callbacks"] = {
        "RunCheckpoint{'monitor': 'val/loss'}": {
            "best_model_score": torch.tensor(2.0),
            "best_model_path": "best.ckpt",
            "best_k_models": {"best.ckpt": torch.tensor(2.0)},
        }
    }
    module = module_of(checkpoint)
    change(checkpoint)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path, module


def test_a_checkpoint_run_py_wrote_passes(tmp_path, trained_checkpoint):
    check_training_state(*crafted(tmp_path, trained_checkpoint, lambda c: None))


def first_state(checkpoint: dict) -> dict:
    return next(iter(checkpoint["optimizer_states"][0]["state"].values()))


def first_group(checkpoint: dict) -> dict:
    return checkpoint["optimizer_states"][0]["param_groups"][0]


def expanded(state: dict) -> torch.Tensor:
    """The right shape, but one stored number: the fused kernel would write past its end."""
    return torch.zeros(1).expand(state["exp_avg"].shape)


def random_bytes() -> torch.Tensor:
    return torch.randint(0, 256, torch.get_rng_state().shape, dtype=torch.uint8)


def callback_state(checkpoint: dict) -> dict:
    return next(iter(checkpoint["callbacks"].values()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Fused AdamW read past this tensor's end: a segmentation fault.
        (lambda c: first_state(c).update(exp_avg=torch.zeros(2)), "has exp_avg of shape (2,)"),
        (lambda c: c["optimizer_states"].append({}), "not one optimizer's state"),
        (lambda c: c["optimizer_states"][0]["param_groups"].pop(), "2 parameter groups"),
        (lambda c: c["optimizer_states"][0]["state"].update({999: {}}), "parameter 999"),
        (lambda c: c["state_dict"].update(junk=torch.zeros(1)), "unknown entry 'junk'"),
        (lambda c: c["state_dict"].pop("model.head.weight"), "lacks 'model.head.weight'"),
        (lambda c: c.update(rng_states={"cpu": torch.zeros(3, dtype=torch.uint8)}), "CPU gener"),
        (lambda c: callback_state(c).update(best_k_models=[]), "best_k_models is not a mapping"),
        (lambda c: callback_state(c).pop("best_model_score"), "best_model_score is missing"),
        (lambda c: callback_state(c).update(best_model_path=3), "best_model_path is not a path"),
        (lambda c: c.update(global_step=-1), "global_step is not a step count"),
        (lambda c: c.update(lr_schedulers=None), "lr_schedulers is not one schedule's state"),
        # Found by review: each got past the first version of the check.
        (lambda c: first_state(c).update(exp_avg=expanded(first_state(c))), "not a dense"),
        (lambda c: first_state(c).pop("exp_avg_sq"), "does not hold exactly"),
        (lambda c: first_group(c).update(lr="x"), "has lr='x'"),
        (lambda c: first_group(c).update(amsgrad=True), "has amsgrad=True, but this optimizer"),
        (lambda c: first_group(c).update(betas=[0.9]), "has betas=[0.9]"),
        (lambda c: c["lr_schedulers"][0].clear(), "another schedule's state"),
        (lambda c: c["lr_schedulers"][0].update(base_lrs=["x"]), "has base_lrs=['x']"),
        (lambda c: c.update(rng_states={"cpu": random_bytes()}), "not a valid CPU generator"),
    ],
)
def test_a_crafted_training_state_is_one_clear_error(tmp_path, trained_checkpoint, change, message):
    path, module = crafted(tmp_path, trained_checkpoint, change)
    with pytest.raises(CheckpointError, match=r"its training state does not fit \(") as error:
        check_training_state(path, module)
    assert message in str(error.value) and "\n" not in str(error.value)


def muon_checkpoint(tmp_path, trained_checkpoint, change=lambda c: None):
    """The trained checkpoint as a Muon run would have saved it (one step of state)."""
    from chargpt.training.optim import build_optimizer

    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["optimizer"]["algorithm"] = "muon"
    module = module_of(checkpoint)
    optimizer = build_optimizer(module.model, module.optimizer_config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, module.schedule.lr_factor)
    for p in module.model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    schedule.step()
    checkpoint["optimizer_states"] = [optimizer.state_dict()]
    checkpoint["lr_schedulers"] = [schedule.state_dict()]
    change(checkpoint)
    path = tmp_path / "muon.ckpt"
    torch.save(checkpoint, path)
    return path, module


def test_a_muon_checkpoint_passes_and_a_tampered_one_is_refused(tmp_path, trained_checkpoint):
    check_training_state(*muon_checkpoint(tmp_path, trained_checkpoint))

    def shrink_momentum(checkpoint):
        states = checkpoint["optimizer_states"][0]["state"]
        first = next(s for s in states.values() if "momentum_buffer" in s)
        first["momentum_buffer"] = torch.zeros(1)

    path, module = muon_checkpoint(tmp_path, trained_checkpoint, shrink_momentum)
    with pytest.raises(CheckpointError, match="has momentum_buffer of shape \\(1,\\), not a dense"):
        check_training_state(path, module)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ns_steps", 5.0, "has ns_steps=5.0, not a value like 5"),
        ("ns_steps", 100, "has ns_steps=100, but this optimizer has 5"),
        ("adjust_lr_fn", "bogus", "has adjust_lr_fn='bogus', but this optimizer has 'original'"),
    ],
)
def test_crafted_muon_settings_are_refused(tmp_path, trained_checkpoint, key, value, message):
    def craft(checkpoint):
        checkpoint["optimizer_states"][0]["param_groups"][0][key] = value  # Muon's group

    path, module = muon_checkpoint(tmp_path, trained_checkpoint, craft)
    with pytest.raises(CheckpointError, match=message):
        check_training_state(path, module)


def test_an_adamw_checkpoint_does_not_resume_under_muon(tmp_path, trained_checkpoint):
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["optimizer"]["algorithm"] = "muon"
    with pytest.raises(CheckpointError, match="not this MuonWithAdamW's with 3 parameter groups"):
        check_training_state(trained_checkpoint, module_of(checkpoint))
