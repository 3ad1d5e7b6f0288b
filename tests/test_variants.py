"""Every variant composes with every other: the cross product of the model's variant settings and
the optimizers, at a tiny size, trains for a few steps and samples (with and without the cache).
"""

import itertools

import pytest
import torch
from helpers import RESUMABLE

from chargpt.model import GPT, GPTConfig
from chargpt.model.config import MLPS, NORM_POSITIONS, POS_ENCODINGS
from chargpt.model.sampling import SamplingConfig
from chargpt.training.optim import ALGORITHMS, OptimizerConfig, ScheduleConfig, build_optimizer

N_HEAD = 4
KV_HEADS = (N_HEAD, N_HEAD // 2, 1)  # multi-head, grouped, multi-query
CROSS_PRODUCT = list(
    itertools.product(POS_ENCODINGS, (False, True), KV_HEADS, NORM_POSITIONS, MLPS, ALGORITHMS)
)


@pytest.mark.parametrize(
    ("pos_encoding", "qk_norm", "n_kv_head", "norm_position", "mlp", "algorithm"), CROSS_PRODUCT
)
def test_every_combination_trains_and_samples(
    pos_encoding, qk_norm, n_kv_head, norm_position, mlp, algorithm
):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=7,
        block_size=8,
        n_layer=2,
        n_head=N_HEAD,
        d_model=16,
        pos_encoding=pos_encoding,
        qk_norm=qk_norm,
        n_kv_head=n_kv_head,
        norm_position=norm_position,
        mlp=mlp,
    )
    model = GPT(config)
    optimizer = build_optimizer(model, OptimizerConfig(algorithm=algorithm, lr=1e-2))
    schedule = ScheduleConfig(decay_steps=3, warmup_steps=1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randint(0, 7, (2, 4, 8))
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(x, y)[1]
        loss.backward()
        optimizer.step()
        scheduler.step()
        assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    model.eval()
    sampling = SamplingConfig(max_new_tokens=10, temperature=1.0)  # past block_size
    prompt = torch.randint(0, 7, (2, 2))
    cached, recomputed = (
        model.generate(prompt, sampling, generator=torch.Generator().manual_seed(1), use_cache=c)
        for c in (True, False)
    )
    assert cached.shape == (2, 12)
    assert torch.equal(cached, recomputed)


VARIANT_RUN = [
    *RESUMABLE,
    "model.pos_encoding=rope",
    "model.qk_norm=true",
    "model.n_kv_head=2",
    "model.norm_position=peri",
    "model.mlp=relu2",
    "optimizer=muon",
    "optimizer.muon_lr=0.03",
    "logger=csv",
]


def test_a_variant_run_with_muon_resumes_as_one_unbroken_run_and_its_checkpoint_samples(
    tmp_path, play_file, capsys
):
    """The checkpoint records every variant setting; sampling rebuilds the model from it."""
    from helpers import csv_metric, run

    from chargpt.runs.checkpoint import load_checkpoint
    from chargpt.sample import main as sample

    data = ["data=text", f"data.path={play_file}"]
    unbroken, halves = tmp_path / "unbroken", tmp_path / "halves"
    run([*data, *VARIANT_RUN, "trainer.max_steps=12", f"hydra.run.dir={unbroken}"])
    run([*data, *VARIANT_RUN, "trainer.max_steps=6", f"hydra.run.dir={halves}"])
    run(["ckpt_path=last", "trainer.max_steps=12", f"hydra.run.dir={halves}"])
    expected = csv_metric(unbroken, "train/loss")
    assert len(expected) == 12
    assert csv_metric(halves, "train/loss") == expected  # identical, not merely close

    checkpoint = halves / "checkpoints" / "last.ckpt"
    model, _ = load_checkpoint(checkpoint)
    config = model.config
    assert (config.pos_encoding, config.qk_norm, config.n_kv_head) == ("rope", True, 2)
    assert (config.norm_position, config.mlp) == ("peri", "relu2")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["optimizer"]["algorithm"] == "muon"
    capsys.readouterr()
    assert sample([f"ckpt={checkpoint}", "prompt=A", "max_new_tokens=40", "seed=1"]) == 0
    text = capsys.readouterr().out.removesuffix("\n")  # print's newline
    assert text.startswith("A") and len(text) == 41  # past block_size 16
