"""Incremental decoding with cached keys and values gives what full recomputation gives."""

import itertools

import pytest
import torch

from chargpt.model import GPT, GPTConfig
from chargpt.model.kv_cache import KVCache
from chargpt.model.sampling import SamplingConfig

BLOCK_SIZE = 8
VOCAB_SIZE = 11

# Both norm placements with both position encodings, then the other settings at least once.
VARIANTS = [
    dict(norm_position=norm_position, pos_encoding=pos_encoding)
    for norm_position, pos_encoding in itertools.product(("pre", "post"), ("learned", "sinusoidal"))
] + [
    dict(norm="rmsnorm", mlp="swiglu", tie_weights=False, bias=False),
    dict(norm_position="post", norm="rmsnorm", pos_encoding="sinusoidal", mlp="swiglu"),
    dict(dropout=0.2),  # off in eval mode, so both paths see the same network
    # Relative and no positions: past block_size the window moves as under absolute ones.
    dict(pos_encoding="rope"),
    dict(pos_encoding="alibi"),
    dict(pos_encoding="none"),
    dict(qk_norm=True),
    dict(n_kv_head=1),
    dict(norm_position="peri", mlp="relu2"),
    dict(norm_position="deepnorm"),
    dict(pos_encoding="rope", qk_norm=True, n_kv_head=2, n_head=4),
    dict(pos_encoding="alibi", n_kv_head=2, n_head=4, norm_position="peri"),
]
VARIANT_IDS = ["-".join(f"{key}={value}" for key, value in variant.items()) for variant in VARIANTS]


def tiny_model(dtype: torch.dtype = torch.float64, **overrides) -> GPT:
    """float64 by default: token equality must not hinge on float32 rounding near a tie."""
    settings = dict(vocab_size=VOCAB_SIZE, block_size=BLOCK_SIZE, n_layer=2, n_head=2, d_model=16)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**(settings | overrides))).to(dtype).eval()
    # Larger weights than the 0.02 init give peaked, input-sensitive distributions, so a wrong
    # cache changes the tokens instead of hiding behind near-uniform logits.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)
    return model


def sampling(max_new_tokens: int, **settings) -> SamplingConfig:
    """Plain sampling at temperature 1 unless told otherwise."""
    return SamplingConfig(max_new_tokens=max_new_tokens, **({"temperature": 1.0} | settings))


def generate_both(
    model: GPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    seed: int | None = None,
    stop_token: int | None = None,
    **settings,
):
    """The same generation with and without the cache; a seed gives each its own generator."""
    outputs = []
    for use_cache in (True, False):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        outputs.append(
            model.generate(
                prompt,
                sampling(max_new_tokens, **settings),
                stop_token=stop_token,
                generator=generator,
                use_cache=use_cache,
            )
        )
    return outputs


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_greedy_tokens_match_recomputation_past_block_size(variant):
    model = tiny_model(**variant)
    prompt = torch.randint(0, VOCAB_SIZE, (3, 3))
    cached, recomputed = generate_both(model, prompt, 3 * BLOCK_SIZE, temperature=0)
    assert cached.shape == (3, 3 + 3 * BLOCK_SIZE)
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_seeded_sampling_matches_recomputation_past_block_size(variant):
    model = tiny_model(**variant)
    prompt = torch.randint(0, VOCAB_SIZE, (3, 3))
    cached, recomputed = generate_both(model, prompt, 3 * BLOCK_SIZE, seed=7)
    assert torch.equal(cached, recomputed)
    # top-k and top-p filter the same logits, so they agree too.
    cached, recomputed = generate_both(model, prompt, 3 * BLOCK_SIZE, top_k=5, top_p=0.9, seed=7)
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_halve_window_matches_recomputation_past_block_size(variant):
    model = tiny_model(**variant)
    prompt = torch.randint(0, VOCAB_SIZE, (3, 3))
    for kwargs in (dict(temperature=0), dict(seed=7), dict(top_k=5, top_p=0.9, seed=7)):
        cached, recomputed = generate_both(model, prompt, 3 * BLOCK_SIZE, window="halve", **kwargs)
        assert torch.equal(cached, recomputed)


def test_halve_window_agrees_with_slide_until_the_window_moves():
    model = tiny_model()
    prompt = torch.randint(0, VOCAB_SIZE, (4, 3))
    slide = model.generate(
        prompt, sampling(3 * BLOCK_SIZE), generator=torch.Generator().manual_seed(5)
    )
    halve = model.generate(
        prompt,
        sampling(3 * BLOCK_SIZE, window="halve"),
        generator=torch.Generator().manual_seed(5),
    )
    # Tokens are drawn from windows of the same BLOCK_SIZE + 1 - 3 first contexts, then not.
    assert torch.equal(halve[:, : BLOCK_SIZE + 1], slide[:, : BLOCK_SIZE + 1])
    assert not torch.equal(halve, slide)


@pytest.mark.parametrize("prompt_length", [1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 3])
def test_prompt_lengths_from_one_to_past_block_size(prompt_length):
    model = tiny_model()
    prompt = torch.randint(0, VOCAB_SIZE, (2, prompt_length))
    cached, recomputed = generate_both(model, prompt, BLOCK_SIZE + 2, seed=3)
    assert torch.equal(cached[:, :prompt_length], prompt)
    assert torch.equal(cached, recomputed)


def test_float32_greedy_tokens_match_recomputation():
    model = tiny_model(torch.float32)
    prompt = torch.randint(0, VOCAB_SIZE, (4, 2))
    cached, recomputed = generate_both(model, prompt, 2 * BLOCK_SIZE, temperature=0)
    assert torch.equal(cached, recomputed)


def test_stop_token_padding_matches_recomputation():
    model = tiny_model()
    prompt = torch.randint(0, VOCAB_SIZE, (5, 2))
    cached, recomputed = generate_both(model, prompt, 3 * BLOCK_SIZE, stop_token=4, seed=11)
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_incremental_logits_match_full_forward(variant, dtype):
    """A prefill, a chunk of several tokens, then one token at a time: the logits of one pass."""
    model = tiny_model(dtype, **variant)
    idx = torch.randint(0, VOCAB_SIZE, (2, BLOCK_SIZE))
    full, _ = model(idx)
    cache = KVCache(model.config, batch_size=2, dtype=dtype)
    pieces = [idx[:, :3], idx[:, 3:6]] + [idx[:, t : t + 1] for t in range(6, BLOCK_SIZE)]
    incremental = torch.cat([model(piece, cache=cache)[0] for piece in pieces], dim=1)
    assert cache.length == BLOCK_SIZE
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(incremental, full, rtol=tolerance, atol=tolerance)


def test_model_sees_each_token_once_until_the_window_slides():
    """Within block_size only the new token is run; past it the cropped window is refilled."""
    model = tiny_model()
    lengths = []
    model.token_embedding.register_forward_hook(
        lambda _m, args, _out: lengths.append(args[0].size(1))
    )
    model.generate(torch.zeros(1, 3, dtype=torch.long), sampling(BLOCK_SIZE, temperature=0))
    assert lengths == [3] + [1] * (BLOCK_SIZE - 3) + [BLOCK_SIZE] * 2
    lengths.clear()
    model.generate(torch.zeros(1, 3, dtype=torch.long), sampling(BLOCK_SIZE), use_cache=False)
    assert lengths == list(range(3, BLOCK_SIZE + 1)) + [BLOCK_SIZE] * 2


def test_halve_window_refills_half_the_window_then_runs_one_token_at_a_time():
    model = tiny_model()
    lengths = []
    model.token_embedding.register_forward_hook(
        lambda _m, args, _out: lengths.append(args[0].size(1))
    )
    half = BLOCK_SIZE // 2
    model.generate(torch.zeros(1, 3, dtype=torch.long), sampling(2 * BLOCK_SIZE, window="halve"))
    # The prompt, one token at a time up to a full window, then twice: the kept half, and one
    # token at a time until the window is full again.
    assert lengths == [3] + [1] * (BLOCK_SIZE - 3) + ([half] + [1] * (BLOCK_SIZE - half)) * 2
    lengths.clear()
    model.generate(
        torch.zeros(1, 3, dtype=torch.long),
        sampling(2 * BLOCK_SIZE, window="halve"),
        use_cache=False,
    )
    assert lengths == list(range(3, BLOCK_SIZE + 1)) + list(range(half, BLOCK_SIZE + 1)) * 2


def test_halve_window_keeps_the_larger_half_of_an_odd_block():
    model = tiny_model(block_size=5)
    lengths = []
    model.token_embedding.register_forward_hook(
        lambda _m, args, _out: lengths.append(args[0].size(1))
    )
    model.generate(
        torch.zeros(1, 1, dtype=torch.long), sampling(8, window="halve"), use_cache=False
    )
    assert lengths == [1, 2, 3, 4, 5, 3, 4, 5]


def test_cache_cannot_grow_past_block_size():
    model = tiny_model()
    cache = KVCache(model.config, batch_size=1, dtype=torch.float64)
    model(torch.zeros(1, BLOCK_SIZE - 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=f"sequence length {BLOCK_SIZE + 1} exceeds block_size"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)


def test_reset_cache_starts_again_at_position_zero():
    model = tiny_model()
    idx = torch.randint(0, VOCAB_SIZE, (1, 5))
    cache = KVCache(model.config, batch_size=1, dtype=torch.float64)
    model(torch.randint(0, VOCAB_SIZE, (1, 4)), cache=cache)
    cache.reset()
    torch.testing.assert_close(model(idx, cache=cache)[0], model(idx)[0])


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_cache_is_sized_by_the_key_value_heads(n_kv_head):
    from chargpt.analyze.estimates import kv_cache_bytes

    model = tiny_model(torch.float32, n_head=4, n_kv_head=n_kv_head)
    cache = KVCache(model.config, batch_size=3, dtype=torch.float32)
    assert cache.layers[0].keys.shape == (3, n_kv_head, BLOCK_SIZE, 4)
    assert cache.nbytes == kv_cache_bytes(model.config, batch_size=3)
    assert cache.nbytes == 2 * 2 * 3 * n_kv_head * BLOCK_SIZE * 4 * 4  # layers·(k, v)·B·nkv·T·hs·4
    model(torch.randint(0, VOCAB_SIZE, (3, 5)), cache=cache)
    assert cache.length == 5
