import itertools
import math
from pathlib import Path

import pytest
import torch
from helpers import NEWER_VARIANTS, variant_id
from omegaconf import OmegaConf

from chargpt.model import GPT, GPTConfig
from chargpt.model.parameters import num_parameters, parameter_breakdown
from chargpt.model.sampling import SamplingConfig

VARIANTS = list(
    itertools.product(
        ("pre", "post"), ("layernorm", "rmsnorm"), ("gelu", "swiglu"), ("learned", "sinusoidal")
    )
)
NEW_VARIANTS = NEWER_VARIANTS
NEW_IDS = [variant_id(v) for v in NEW_VARIANTS]


def tiny_config(**overrides) -> GPTConfig:
    settings = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, d_model=16) | overrides
    return GPTConfig(**settings)


def test_forward_shapes_and_loss():
    model = GPT(tiny_config())
    idx = torch.randint(0, 11, (3, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 16, 11)
    assert loss.shape == ()
    logits_only, no_loss = model(idx[:, :5])
    assert logits_only.shape == (3, 5, 11) and no_loss is None


def test_sequence_longer_than_block_size_is_rejected():
    with pytest.raises(ValueError, match="sequence length 17 exceeds block_size 16"):
        GPT(tiny_config())(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(("norm_position", "norm", "mlp", "pos_encoding"), VARIANTS)
def test_causal_mask_cannot_leak(norm_position, norm, mlp, pos_encoding):
    """Changing tokens after position t leaves the logits up to t unchanged."""
    model = GPT(
        tiny_config(norm_position=norm_position, norm=norm, mlp=mlp, pos_encoding=pos_encoding)
    ).eval()
    idx = torch.randint(0, 11, (2, 16))
    t = 7
    changed = idx.clone()
    changed[:, t + 1 :] = (idx[:, t + 1 :] + 1 + torch.randint(0, 9, (2, 8))) % 11
    before, _ = model(idx)
    after, _ = model(changed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1])
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("variant", NEW_VARIANTS, ids=NEW_IDS)
def test_causal_mask_cannot_leak_with_the_newer_variants(variant):
    """Changing one token at t changes no logit before t, with every position encoding."""
    torch.manual_seed(0)
    model = GPT(tiny_config(n_head=4, **variant)).eval()
    idx = torch.randint(0, 11, (2, 16))
    for t in (0, 7, 15):
        changed = idx.clone()
        changed[:, t] = (idx[:, t] + 1) % 11
        before, _ = model(idx)
        after, _ = model(changed)
        torch.testing.assert_close(before[:, :t], after[:, :t], rtol=0, atol=1e-6)
        assert not torch.allclose(before[:, t:], after[:, t:])


def test_tied_head_shares_storage_and_counts_once():
    tied = GPT(tiny_config(tie_weights=True))
    untied = GPT(tiny_config(tie_weights=False))
    assert tied.head.weight.data_ptr() == tied.token_embedding.weight.data_ptr()
    assert untied.head.weight.data_ptr() != untied.token_embedding.weight.data_ptr()
    assert num_parameters(untied) - num_parameters(tied) == 11 * 16
    # A step through the head moves the embedding too: it is one tensor.
    tied.head.weight.data[0, 0] = 42.0
    assert tied.token_embedding.weight[0, 0].item() == 42.0


def expected_parameters(
    V,
    T,
    n_layer,
    d,
    *,
    tied=True,
    mlp="gelu",
    norm="layernorm",
    norm_position="pre",
    pos_encoding="learned",
    n_head=None,
    n_kv_head=None,
    qk_norm=False,
) -> int:
    """GPT parameter count written out by hand (bias=True)."""
    norm_params = 2 * d if norm == "layernorm" else d
    kv = 0 if n_head is None else (n_kv_head or n_head) * (d // n_head)  # k (or v) width
    qkv_out = 3 * d if n_head is None else d + 2 * kv
    attention = (d * qkv_out + qkv_out) + (d * d + d)
    attention += 2 * (d // n_head) if qk_norm else 0  # a gain per head channel, q and k
    if mlp in ("gelu", "relu2"):
        hidden = 4 * d
        mlp_params = (d * hidden + hidden) + (hidden * d + d)
    else:
        hidden = 8 * math.ceil(round(8 * d / 3) / 8)
        mlp_params = (d * 2 * hidden + 2 * hidden) + (hidden * d + d)
    norms_per_block = 4 if norm_position == "peri" else 2
    block = attention + mlp_params + norms_per_block * norm_params
    total = V * d + n_layer * block
    total += T * d if pos_encoding == "learned" else 0
    total += norm_params if norm_position in ("pre", "peri") else 0
    total += 0 if tied else V * d
    return total


SIZE_DIR = Path(__file__).resolve().parents[2] / "conf" / "model" / "size"
# The scaling table users know: (n_layer, n_head, d_model).
PRESETS = {"tiny": (2, 4, 64), "small": (4, 8, 128), "medium": (8, 16, 256), "large": (12, 16, 512)}


def test_preset_files_hold_the_published_dimensions():
    files = {p.stem: OmegaConf.load(p) for p in SIZE_DIR.glob("*.yaml")}
    assert set(files) == set(PRESETS)
    for name, size in files.items():
        assert (size.n_layer, size.n_head, size.d_model) == PRESETS[name], name


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("tied", [True, False])
def test_preset_parameter_counts_match_the_formula(preset, tied):
    size = OmegaConf.load(SIZE_DIR / f"{preset}.yaml")
    n_layer, n_head, d_model = size.n_layer, size.n_head, size.d_model
    model = GPT(
        GPTConfig(
            vocab_size=65,
            block_size=64,
            n_layer=n_layer,
            n_head=n_head,
            d_model=d_model,
            tie_weights=tied,
        )
    )
    assert num_parameters(model) == expected_parameters(65, 64, n_layer, d_model, tied=tied)


@pytest.mark.parametrize(("norm_position", "norm", "mlp", "pos_encoding"), VARIANTS)
def test_breakdown_adds_up_for_every_variant(norm_position, norm, mlp, pos_encoding):
    variant = dict(norm_position=norm_position, norm=norm, mlp=mlp, pos_encoding=pos_encoding)
    model = GPT(tiny_config(**variant))
    breakdown = parameter_breakdown(model)
    assert sum(breakdown.values()) == num_parameters(model)
    assert num_parameters(model) == expected_parameters(11, 16, 2, 16, **variant)
    assert breakdown["head"] == 0  # tied: counted with the token embedding
    assert breakdown["token_embedding"] == 11 * 16
    assert breakdown["position_embedding"] == (16 * 16 if pos_encoding == "learned" else 0)


@pytest.mark.parametrize("variant", NEW_VARIANTS, ids=NEW_IDS)
@pytest.mark.parametrize("tied", [True, False])
def test_newer_variants_count_the_formula(variant, tied):
    model = GPT(tiny_config(n_head=4, tie_weights=tied, **variant))
    breakdown = parameter_breakdown(model)
    assert sum(breakdown.values()) == num_parameters(model)
    assert num_parameters(model) == expected_parameters(
        11, 16, 2, 16, tied=tied, n_head=4, **variant
    )
    assert breakdown["position_embedding"] == 0 or variant.get("pos_encoding") is None


def test_deepnorm_scales_the_residual_and_the_branch_init():
    """alpha = (2N)^(1/4) on the residual, beta = (8N)^(-1/4) times 0.02 for v, attention's
    output and both MLP matrices; q and k keep 0.02 (DeepNet, decoder-only)."""
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=11, n_layer=12, n_head=4, d_model=128, norm_position="deepnorm")
    )
    block = model.blocks[0]
    assert block.alpha == pytest.approx(24**0.25)
    beta_std = 0.02 * 96**-0.25
    q, k, v = block.attn.qkv.weight.split(128)
    for weight in (q, k):
        assert weight.std().item() == pytest.approx(0.02, rel=0.05)
    for weight in (v, block.attn.proj.weight, block.mlp.fc.weight, block.mlp.proj.weight):
        assert weight.std().item() == pytest.approx(beta_std, rel=0.05)
    x = torch.randn(2, 5, 128)
    expected = block.norm1(block.alpha * x + block.attn(x))
    expected = block.norm2(block.alpha * expected + block.mlp(expected))
    torch.testing.assert_close(block(x), expected)


def test_peri_norm_normalises_each_branch_input_and_output():
    torch.manual_seed(0)
    block = GPT(tiny_config(norm_position="peri")).blocks[0]
    for norm in (block.norm1, block.norm2, block.attn_out_norm, block.mlp_out_norm):
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)  # distinct gains: a swapped norm would show
    x = torch.randn(2, 5, 16)
    h = x + block.attn_out_norm(block.attn(block.norm1(x)))
    torch.testing.assert_close(block(x), h + block.mlp_out_norm(block.mlp(block.norm2(h))))


def test_relu2_is_the_square_of_relu():
    mlp = GPT(tiny_config(mlp="relu2")).blocks[0].mlp
    x = torch.randn(3, 16)
    torch.testing.assert_close(mlp(x), mlp.proj(torch.relu(mlp.fc(x)) ** 2))


def test_rope_scores_depend_on_the_distance_alone():
    """Rotated q·k at positions (i, j) equals that at (i + s, j + s)."""
    from chargpt.model.gpt import RotaryPositions, rotate

    rotary = RotaryPositions(tiny_config(block_size=32, pos_encoding="rope"))
    q, k = torch.randn(8), torch.randn(8)

    def score(i, j):
        return rotate(q, rotary.cos[i], rotary.sin[i]) @ rotate(k, rotary.cos[j], rotary.sin[j])

    torch.testing.assert_close(score(5, 2), score(25, 22), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4))


def test_alibi_slopes_and_bias_follow_the_paper():
    from chargpt.model.gpt import ALiBiPositions, alibi_slopes

    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    # 6 heads: the 4-head sequence, then every other one of the 8-head sequence.
    expected = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(expected))
    bias = ALiBiPositions(tiny_config(pos_encoding="alibi")).in_attention(2, 3).bias
    assert bias.shape == (1, 2, 3, 5)  # queries at positions 2, 3, 4 over keys 0..4
    slope = alibi_slopes(2)[0]
    torch.testing.assert_close(bias[0, 0, 0, :3], -slope * torch.tensor([2.0, 1.0, 0.0]))
    assert torch.isinf(bias[0, :, 0, 3:]).all() and torch.isinf(bias[0, :, 1, 4:]).all()


def test_initial_loss_is_close_to_uniform():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, d_model=64))
    idx, targets = torch.randint(0, 65, (2, 8, 32))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(65)) < 0.1


def test_residual_projections_are_scaled_down():
    model = GPT(GPTConfig(vocab_size=65, n_layer=8, d_model=256, n_head=4))
    expected_std = 0.02 / math.sqrt(2 * 8)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(model.blocks[0].attn.qkv.bias) == 0


# What checkpoints are saved under, in the order the optimizer state lists the parameters: both
# must stay as they were for the checkpoints users already trained to load and resume.
BLOCK_NAMES = [
    f"blocks.0.{name}"
    for name in (
        *("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias"),
        *("attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias"),
        *("mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"),
    )
]
PARAMETER_NAMES = {
    "learned": [
        "token_embedding.weight",
        "position_embedding.weight",
        *BLOCK_NAMES,
        *("final_norm.weight", "final_norm.bias"),
    ],
    "sinusoidal": ["token_embedding.weight", *BLOCK_NAMES, "final_norm.weight", "final_norm.bias"],
}
SAVED_NAMES = {
    "learned": {*PARAMETER_NAMES["learned"], "head.weight"},
    "sinusoidal": {*PARAMETER_NAMES["sinusoidal"], "head.weight", "position_table"},
}


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
def test_weights_keep_the_names_and_order_checkpoints_were_saved_with(pos_encoding):
    model = GPT(tiny_config(n_layer=1, pos_encoding=pos_encoding))
    assert set(model.state_dict()) == SAVED_NAMES[pos_encoding]
    assert [name for name, _ in model.named_parameters()] == PARAMETER_NAMES[pos_encoding]


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal"])
def test_a_state_dict_under_the_saved_names_loads(pos_encoding):
    config = tiny_config(n_layer=1, pos_encoding=pos_encoding)
    torch.manual_seed(0)
    trained = GPT(config).eval()
    saved = {name: tensor.clone() for name, tensor in trained.state_dict().items()}
    assert set(saved) == SAVED_NAMES[pos_encoding]
    torch.manual_seed(1)
    model = GPT(config).eval()
    model.load_state_dict(saved)
    idx = torch.randint(0, 11, (2, 16))
    torch.testing.assert_close(model(idx)[0], trained(idx)[0])
    assert set(saved) == SAVED_NAMES[pos_encoding]  # the caller's dict is left as it was


class TestGenerate:
    def setup_method(self):
        torch.manual_seed(0)
        self.model = GPT(tiny_config(block_size=8)).eval()

    def test_returns_prompt_plus_n_tokens(self):
        prompt = torch.randint(0, 11, (2, 3))
        out = self.model.generate(prompt, SamplingConfig(max_new_tokens=5))
        assert out.shape == (2, 8)
        assert torch.equal(out[:, :3], prompt)

    def test_crops_context_past_block_size(self):
        out = self.model.generate(
            torch.zeros(1, 6, dtype=torch.long), SamplingConfig(max_new_tokens=20)
        )
        assert out.shape == (1, 26)

    def test_never_samples_outside_top_k(self):
        prompt = torch.zeros(64, 4, dtype=torch.long)
        logits, _ = self.model(prompt)
        allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
        out = self.model.generate(
            prompt, SamplingConfig(max_new_tokens=1, temperature=2.0, top_k=3)
        )
        assert set(out[:, -1].tolist()) <= allowed

    def test_never_samples_outside_the_nucleus(self):
        prompt = torch.zeros(64, 4, dtype=torch.long)
        probs = self.model(prompt)[0][0, -1].softmax(-1)
        order = probs.argsort(descending=True)
        # The smallest set of top tokens whose probability reaches 0.5.
        size = int((probs[order].cumsum(0) < 0.5).sum()) + 1
        nucleus = set(order[:size].tolist())
        out = self.model.generate(prompt, SamplingConfig(max_new_tokens=1, top_p=0.5))
        assert set(out[:, -1].tolist()) <= nucleus

    def test_stops_on_stop_token(self):
        prompt = torch.zeros(1, 2, dtype=torch.long)
        greedy = SamplingConfig(max_new_tokens=1, temperature=0)
        greedy_next = self.model.generate(prompt, greedy)[0, -1].item()
        greedy = SamplingConfig(max_new_tokens=50, temperature=0)
        out = self.model.generate(prompt, greedy, stop_token=greedy_next)
        assert out.shape == (1, 3) and out[0, -1].item() == greedy_next

    def test_same_seed_same_text(self):
        prompt = torch.zeros(1, 1, dtype=torch.long)
        sampling = SamplingConfig(max_new_tokens=20)
        a = self.model.generate(prompt, sampling, generator=torch.Generator().manual_seed(1))
        b = self.model.generate(prompt, sampling, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b)

    def test_top_k_beyond_the_vocabulary_is_rejected(self):
        prompt = torch.zeros(1, 1, dtype=torch.long)
        self.model.generate(prompt, SamplingConfig(max_new_tokens=1, top_k=11))
        with pytest.raises(
            ValueError, match="top_k=12: must be between 1 and the vocabulary size 11"
        ):
            self.model.generate(prompt, SamplingConfig(max_new_tokens=1, top_k=12))


@pytest.mark.parametrize("cached", [0, 5])
def test_bf16_attention_on_cpu_matches_fp32_and_stays_causal(cached):
    """bf16 q, k, v are attended in fp32 (the CPU's bf16 flash backward is slow): the result
    is bf16, equals fp32 attention to bf16's precision, and its gradients reach q, k and v."""
    from chargpt.model.gpt import attend

    torch.manual_seed(0)
    T = 7
    q, k, v = (torch.randn(2, 4, n, 16) for n in (T, cached + T, cached + T))
    expected = attend(q, k, v)
    low = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(*low)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)
    out.float().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in low)
    # The last position's value reaches no earlier query.
    changed_v = low[2].detach().clone()
    changed_v[:, :, -1] += 10
    again = attend(low[0].detach(), low[1].detach(), changed_v)
    assert torch.equal(again[:, :, :-1], out.detach()[:, :, :-1])
