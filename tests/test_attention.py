"""Chapter 3: attention (tinyllm/attention.py)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.attention import CausalSelfAttention, KVCache, attention, causal_mask


def layer(d_model=32, n_heads=4, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return CausalSelfAttention(d_model, n_heads, dropout).eval()


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), length=st.integers(1, 40), heads=st.sampled_from([1, 2, 4, 8]),
       head_dim=st.sampled_from([4, 8, 16]), seed=st.integers(0, 1000))
def test_hand_written_path_agrees_with_sdpa(batch, length, heads, head_dim, seed):
    attn = layer(heads * head_dim, heads, seed)
    x = torch.randn(batch, length, heads * head_dim)
    with torch.no_grad():
        by_hand, weights = attn(x, return_weights=True)
        fused = attn(x)
    assert by_hand.shape == fused.shape == x.shape
    assert weights.shape == (batch, heads, length, length)
    assert (by_hand - fused).abs().max() < 1e-5


@settings(max_examples=40, deadline=None)
@given(length=st.integers(2, 30), t=st.integers(0, 29), seed=st.integers(0, 1000),
       fused=st.booleans())
def test_outputs_up_to_t_never_depend_on_later_tokens(length, t, seed, fused):
    t = t % length
    attn = layer(seed=seed)
    x = torch.randn(1, length, 32)
    changed = x.clone()
    changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:]) * 10   # rewrite the future
    with torch.no_grad():
        run = (lambda z: attn(z)) if fused else (lambda z: attn(z, return_weights=True)[0])
        before, after = run(x), run(changed)
    assert torch.allclose(before[:, :t + 1], after[:, :t + 1], atol=1e-6)
    if t + 1 < length:
        assert not torch.allclose(before[:, t + 1:], after[:, t + 1:])   # the future does matter later


def test_weights_are_distributions_and_zero_above_the_diagonal():
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        _, weights = layer()(x, return_weights=True)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 9))
    assert torch.all(weights >= 0)
    assert torch.all(weights.triu(diagonal=1) == 0)


@pytest.mark.parametrize("split", [[12], [1] * 12, [5, 1, 1, 5], [3, 4, 5], [11, 1]])
def test_cached_pieces_equal_one_full_pass(split):
    attn = layer(seed=3)
    x = torch.randn(2, sum(split), 32)
    cache, outputs, start = KVCache(), [], 0
    with torch.no_grad():
        full, full_weights = attn(x, return_weights=True)
        for size in split:
            outputs.append(attn(x[:, start:start + size], kv_cache=cache))
            start += size
    assert len(cache) == sum(split)
    assert torch.allclose(torch.cat(outputs, dim=1), full, atol=1e-5)
    # the hand-written path through a cache returns the rows of the full weight matrix
    cache = KVCache()
    with torch.no_grad():
        attn(x[:, :7], kv_cache=cache)
        _, last = attn(x[:, 7:], kv_cache=cache, return_weights=True)
    assert torch.allclose(last, full_weights[:, :, 7:], atol=1e-6)


def test_causal_mask_aligns_new_queries_with_the_last_keys():
    assert torch.equal(causal_mask(3, 3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    assert causal_mask(1, 5).all()


def test_attention_by_hand_on_a_pencil_example():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    out, weights = attention(q, k, v)
    e = torch.exp(torch.tensor(1 / 2 ** 0.5))          # score 1/sqrt(2) against 0
    assert torch.allclose(weights, torch.tensor([[e / (e + 1), 1 / (e + 1)]]))
    assert torch.allclose(out, weights @ v)


def test_dropout_only_in_training():
    attn = layer(dropout=0.5)
    x = torch.randn(1, 10, 32)
    attn.eval()
    with torch.no_grad():
        assert torch.equal(attn(x), attn(x))
        _, weights = attn(x, return_weights=True)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 4, 10))
    attn.train()
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(attn(x), attn(x))


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(30, 4)


def test_gradients_flow_through_both_paths():
    attn = layer()
    x = torch.randn(2, 6, 32, requires_grad=True)
    attn(x).sum().backward()
    fused_grad = x.grad.clone()
    x.grad = None
    attn(x, return_weights=True)[0].sum().backward()
    assert torch.allclose(fused_grad, x.grad, atol=1e-5)
