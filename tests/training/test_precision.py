"""trainer.precision=auto: bf16 autocast where the device multiplies bf16 natively, else fp32."""

import pytest
import torch
from omegaconf import OmegaConf

from chargpt.training import precision as precision_module
from chargpt.training.precision import check_precision, native_bf16, resolve_precision


@pytest.mark.parametrize(("cpu_bf16", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_follows_the_cpus_native_bf16(monkeypatch, cpu_bf16, expected):
    monkeypatch.setattr(precision_module, "_mkldnn_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for accelerator in ("cpu", "auto"):
        trainer_cfg = OmegaConf.create({"accelerator": accelerator, "precision": "auto"})
        resolve_precision(trainer_cfg)
        assert trainer_cfg.precision == expected


def test_a_named_precision_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(precision_module, "_mkldnn_bf16", lambda: True)
    trainer_cfg = OmegaConf.create({"accelerator": "cpu", "precision": "32-true"})
    resolve_precision(trainer_cfg)
    assert trainer_cfg.precision == "32-true"


def test_this_machines_answer_is_onednns():
    expected = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bf16("cpu") is expected


def test_auto_is_a_valid_precision_and_a_typo_names_it():
    check_precision("auto")
    with pytest.raises(Exception, match="must be auto or one of 32-true"):
        check_precision("autp")
