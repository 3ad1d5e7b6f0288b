import json
import subprocess
import sys

import pytest
import torch
from conftest import PLAY

import chargpt.runs.checkpoint as checkpoint_module
from chargpt.model import GPT
from chargpt.model.gpt import sinusoidal_positions
from chargpt.runs.checkpoint import CheckpointError, DeviceError, check_device, load_checkpoint
from chargpt.training.module import GPTLightningModule


def test_checkpoint_alone_rebuilds_the_trained_model(trained_checkpoint):
    model, tokenizer = load_checkpoint(trained_checkpoint)
    module = GPTLightningModule.load_from_checkpoint(trained_checkpoint, weights_only=True)
    idx = torch.tensor([tokenizer.encode("ALL:\nSpeak")])
    module.eval()
    torch.testing.assert_close(model(idx)[0], module(idx)[0])
    assert not model.training
    assert tokenizer == module.tokenizer


def test_hyperparameters_are_plain_data(trained_checkpoint):
    hparams = torch.load(trained_checkpoint, weights_only=True)["hyper_parameters"]
    assert set(hparams) == {"model", "optimizer", "scheduler", "tokenizer"}
    assert hparams["model"]["n_layer"] == 1 and hparams["model"]["tie_weights"] is True
    assert isinstance(hparams["tokenizer"]["chars"], list)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path, trained_checkpoint):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(trained_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)


class RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": RunsCode(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_weights_that_do_not_fit_the_config(tmp_path, trained_checkpoint):
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["n_layer"] = 2
    path = tmp_path / "mismatch.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="weights do not fit its model config"):
        load_checkpoint(path)


def test_a_torch_file_that_is_not_ours(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a chargpt checkpoint"):
        load_checkpoint(path)


# --- An untrusted file is checked before anything large is allocated ---------------------------


def crafted(tmp_path, trained_checkpoint, edit, name="crafted.ckpt"):
    """The trained checkpoint, changed by `edit(checkpoint)` and saved again."""
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    edit(checkpoint)
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def set_model(**changes):
    return lambda checkpoint: checkpoint["hyper_parameters"]["model"].update(changes)


PEAK_MEMORY = """
import json, resource, sys, time
from chargpt.runs.checkpoint import CheckpointError, load_checkpoint

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

load_checkpoint(sys.argv[1])  # lazy imports and first allocations are not counted
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) for line in status if line.startswith("VmSize:")) * 1024
# A safety net: without the checks, a bad file fails here instead of exhausting the machine.
resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))
baseline = peak_mb()
for path in sys.argv[2:]:
    start = time.perf_counter()
    try:
        load_checkpoint(path)
        error = "loaded"
    except CheckpointError as caught:
        error = str(caught)
    except BaseException as caught:
        error = f"{type(caught).__name__} (not a CheckpointError): {caught}"
    seconds = time.perf_counter() - start
    print(json.dumps({"error": error, "seconds": seconds, "growth_mb": peak_mb() - baseline}))
"""

HUGE = {
    "n_layer=10**6": (set_model(n_layer=10**6), "n_layer=1000000 but the weights hold 1"),
    "vocab_size=10**9": (set_model(vocab_size=10**9), "vocab_size=1000000000 exceeds"),
    "d_model=2**20": (set_model(d_model=2**20), "model.token_embedding.weight has shape"),
    "block_size=10**9": (set_model(block_size=10**9), "position_embedding.weight has shape"),
    "mlp_ratio=1e9": (set_model(mlp_ratio=1e9), "blocks.0.mlp.fc.weight has shape"),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and ru_maxrss")
def test_huge_sizes_are_refused_fast_in_little_memory(tmp_path, trained_checkpoint):
    paths = [
        crafted(tmp_path, trained_checkpoint, edit, f"{i}.ckpt")
        for i, (edit, _) in enumerate(HUGE.values())
    ]
    args = [sys.executable, "-c", PEAK_MEMORY, str(trained_checkpoint), *map(str, paths)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for (name, (_, message)), line in zip(HUGE.items(), result.stdout.splitlines(), strict=True):
        outcome = json.loads(line)
        assert message in outcome["error"], name
        assert outcome["seconds"] < 10 and outcome["growth_mb"] < 200, (name, outcome)


def test_tokenizer_must_agree_with_vocab_size(tmp_path, trained_checkpoint):
    path = crafted(
        tmp_path,
        trained_checkpoint,
        lambda c: c["hyper_parameters"]["tokenizer"]["chars"].pop(),
    )
    with pytest.raises(CheckpointError, match=r"tokenizer has \d+ characters but model.vocab_size"):
        load_checkpoint(path)


def test_changed_d_model_names_the_first_bad_key_and_both_shapes(tmp_path, trained_checkpoint):
    path = crafted(tmp_path, trained_checkpoint, set_model(d_model=32))
    vocab = torch.load(trained_checkpoint, weights_only=True)["hyper_parameters"]["model"][
        "vocab_size"
    ]
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert (
        f"model.token_embedding.weight has shape ({vocab}, 16) in the file but ({vocab}, 32)"
        in (message)
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, trained_checkpoint, value):
    def poison(checkpoint):
        checkpoint["state_dict"]["model.blocks.0.mlp.fc.weight"][3, 2] = value

    path = crafted(tmp_path, trained_checkpoint, poison)
    with pytest.raises(
        CheckpointError,
        match=r"non-finite values in model\.blocks\.0\.mlp\.fc\.weight: the run diverged",
    ):
        load_checkpoint(path)


def test_missing_and_unexpected_weights(tmp_path, trained_checkpoint):
    def drop(checkpoint):
        del checkpoint["state_dict"]["model.final_norm.weight"]

    def add(checkpoint):
        checkpoint["state_dict"]["model.extra.weight"] = torch.zeros(3)

    with pytest.raises(CheckpointError, match=r"model\.final_norm\.weight is missing"):
        load_checkpoint(crafted(tmp_path, trained_checkpoint, drop))
    with pytest.raises(CheckpointError, match=r"model\.extra\.weight is not part of the model"):
        load_checkpoint(crafted(tmp_path, trained_checkpoint, add))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(hyper_parameters=[1, 2]), "no hyper_parameters and state_dict dicts"),
        (lambda c: c.update(state_dict="weights"), "not a chargpt checkpoint"),
        (lambda c: c["hyper_parameters"].update(model="gpt"), "needs a model dict"),
        (lambda c: c["hyper_parameters"].update(tokenizer={"chars": "abc"}), "chars list"),
        (
            lambda c: c["hyper_parameters"]["tokenizer"]["chars"].append("ab"),
            "tokenizer is invalid",
        ),
        (lambda c: c["hyper_parameters"]["tokenizer"]["chars"].append(7), "not all strings"),
        (set_model(n_head=3), "model.d_model=16 is not divisible by model.n_head=3"),
        (set_model(colour="red"), "model config is invalid"),
        (set_model(n_layer="1"), "model.n_layer='1': must be a positive integer"),
        (lambda c: c["state_dict"].update({"model.head.weight": 3}), "not a dense tensor"),
        (
            lambda c: c["state_dict"].update(
                {"model.head.weight": torch.zeros(2, dtype=torch.long)}
            ),
            "torch.int64, not floating-point",
        ),
    ],
)
def test_malformed_parts_are_one_line_errors_naming_the_file(
    tmp_path, trained_checkpoint, edit, message
):
    path = crafted(tmp_path, trained_checkpoint, edit)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_weights_aliased_to_look_like_more_layers_are_refused(tmp_path, trained_checkpoint):
    """Three blocks that are views of one: the file is small, the built model would not be."""

    def alias(checkpoint):
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("model.blocks.0.")]:
            for i in (1, 2):
                state[key.replace("blocks.0.", f"blocks.{i}.")] = state[key]
        checkpoint["hyper_parameters"]["model"]["n_layer"] = 3

    with pytest.raises(CheckpointError, match="its weights share storage"):
        load_checkpoint(crafted(tmp_path, trained_checkpoint, alias))


def test_legacy_format_is_refused(tmp_path, trained_checkpoint):
    path = tmp_path / "legacy.ckpt"
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy non-zip format"):
        load_checkpoint(path)


def test_a_sinusoidal_model_loads_its_table_saved_as_position_table(tmp_path, trained_checkpoint):
    """`position_table`: the name the table was saved under when it was GPT's own buffer."""

    def to_sinusoidal(checkpoint):
        checkpoint["hyper_parameters"]["model"]["pos_encoding"] = "sinusoidal"
        del checkpoint["state_dict"]["model.position_embedding.weight"]
        checkpoint["state_dict"]["model.position_table"] = sinusoidal_positions(16, 16) + 1

    model, _ = load_checkpoint(crafted(tmp_path, trained_checkpoint, to_sinusoidal))
    assert model.config.pos_encoding == "sinusoidal"
    torch.testing.assert_close(model.position_embedding.table, sinusoidal_positions(16, 16) + 1)


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
def test_a_run_saved_under_the_old_names_loads_and_resumes(tmp_path, pos_encoding):
    """Saved, loaded for sampling, checked and resumed: the names on disk stay what they were."""
    import lightning as L

    from chargpt.data.datamodule import CharDataModule
    from chargpt.training.resume_state import check_training_state

    corpus = tmp_path / "play.txt"
    corpus.write_text(PLAY * 40, encoding="utf-8")
    datamodule = CharDataModule(corpus=None, path=str(corpus), block_size=16, batch_size=4)
    datamodule.setup("fit")
    settings = dict(vocab_size=datamodule.vocab_size, block_size=16, n_layer=1, n_head=2)
    hparams = dict(
        model=settings | dict(d_model=16, pos_encoding=pos_encoding),
        optimizer={},
        scheduler=dict(warmup_steps=0, decay_steps=5),
        tokenizer=datamodule.tokenizer.to_dict(),
    )

    def trainer(max_steps):
        return L.Trainer(
            max_steps=max_steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )

    first = trainer(2)
    first.fit(GPTLightningModule(**hparams), datamodule=datamodule)
    path = tmp_path / "run.ckpt"
    first.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    legacy = {"learned": "model.position_embedding.weight", "sinusoidal": "model.position_table"}
    assert legacy[pos_encoding] in saved and "model.position_embedding.table" not in saved

    model, _ = load_checkpoint(path)
    torch.testing.assert_close(
        model.state_dict(), {k[len("model.") :]: v for k, v in saved.items()}
    )
    module = GPTLightningModule(**hparams)
    check_training_state(path, module)
    resumed = trainer(3)
    resumed.fit(module, datamodule=datamodule, ckpt_path=path)
    assert resumed.global_step == 3


def test_huge_unsaved_buffers_are_refused_before_they_exist(trained_checkpoint, monkeypatch):
    class WithHugeMask(GPT):
        def __init__(self, config):
            super().__init__(config)
            self.register_buffer("mask", torch.empty(2**30), persistent=False)  # 4 GiB

    monkeypatch.setattr(checkpoint_module, "GPT", WithHugeMask)
    with pytest.raises(CheckpointError, match="would build 4294967296 bytes of buffers"):
        load_checkpoint(trained_checkpoint)


def test_loaded_tensors_are_mapped_not_read(trained_checkpoint, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(trained_checkpoint)
    assert calls == [dict(map_location="cpu", weights_only=True, mmap=True)]


# --- The device ----------------------------------------------------------------------------------


def test_device_is_checked_before_the_file(tmp_path):
    with pytest.raises(DeviceError, match="device='banana' is not a device: use cpu, cuda"):
        load_checkpoint(tmp_path / "nope.ckpt", map_location="banana")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu(trained_checkpoint):
    with pytest.raises(DeviceError, match=r"device=cuda: PyTorch sees no GPU here \(torch "):
        load_checkpoint(trained_checkpoint, map_location="cuda")


def test_check_device():
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="device=meta: not supported here"):
        check_device("meta")
    with pytest.raises(DeviceError, match="is not a device"):
        check_device("cuda:x")
    with pytest.raises(DeviceError, match="device=cuda:99: PyTorch sees"):
        check_device("cuda:99")


VARIANTS = [
    dict(pos_encoding="rope", qk_norm=True),
    dict(pos_encoding="alibi", n_kv_head=1),
    dict(pos_encoding="none", norm_position="deepnorm"),
    dict(norm_position="peri", mlp="relu2", n_kv_head=2, n_head=4),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_a_checkpoint_records_its_variant_and_sampling_rebuilds_it(tmp_path, variant):
    from chargpt.data.tokenizer import CharTokenizer
    from chargpt.model.sampling import SamplingConfig, generate_text

    tokenizer = CharTokenizer(sorted(set(PLAY)))
    model = dict(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, d_model=16)
    module = GPTLightningModule(
        model=model | variant,
        optimizer={"algorithm": "muon"},
        scheduler=dict(decay_steps=5),
        tokenizer=tokenizer.to_dict(),
    )
    path = tmp_path / "variant.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    loaded, loaded_tokenizer = load_checkpoint(path)
    assert loaded.config == module.model_config
    for key, value in variant.items():
        assert getattr(loaded.config, key) == value
    for (name, saved), rebuilt in zip(
        module.model.state_dict().items(), loaded.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(saved, rebuilt, msg=name)
    sampling = SamplingConfig(prompt="A", max_new_tokens=30, seed=1)  # past block_size 16
    module.model.eval()
    assert generate_text(loaded, loaded_tokenizer, sampling) == generate_text(
        module.model, tokenizer, sampling
    )
