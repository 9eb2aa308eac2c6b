"""Chapter 4: the transformer (tinyllm/model.py)."""
import math

import pytest
import torch
from safetensors.torch import load_model, save_model

from tinyllm.model import (IGNORE_INDEX, PRESETS, LayerNorm, ModelConfig, TinyLM, flops_per_token, layer_norm)
from tinyllm.tokenizer import VOCAB_SIZE


def tiny(vocab_size=300, **overrides):
    torch.manual_seed(0)
    shape = dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, context_length=32, dropout=0.0)
    return TinyLM(ModelConfig(vocab_size=vocab_size, **{**shape, **overrides}))


def test_shapes():
    model = tiny()
    ids = torch.randint(0, 300, (3, 17))
    logits, loss = model(ids)
    assert logits.shape == (3, 17, 300) and loss is None
    logits, loss = model(ids, ids)   # every position scored: a row of logits per position
    assert logits.shape == (3 * 17, 300) and loss.shape == () and torch.isfinite(loss)


def test_t4_preset_has_8_to_10_million_parameters():
    model = TinyLM(ModelConfig.preset("t4", vocab_size=VOCAB_SIZE))
    assert 8_000_000 <= model.num_params() <= 10_000_000
    assert (model.config.n_layers, model.config.d_model, model.config.n_heads, model.config.d_ff,
            model.config.context_length) == (6, 384, 6, 768, 128)


def test_presets_pad_the_vocabulary_and_reject_unknown_names():
    assert ModelConfig.preset("cpu", vocab_size=2300).vocab_size == 2304
    assert ModelConfig.preset("t4", vocab_size=2305).vocab_size == 2368
    assert set(PRESETS) == {"t4", "cpu"}
    assert TinyLM(ModelConfig.preset("cpu", VOCAB_SIZE)).num_params() < TinyLM(ModelConfig.preset("t4", VOCAB_SIZE)).num_params()
    with pytest.raises(ValueError, match="unknown preset 'gpu': choose one of t4, cpu"):
        ModelConfig.preset("gpu", vocab_size=100)


def test_config_round_trips_through_a_dict_and_rejects_bad_ones():
    config = ModelConfig.preset("cpu", 1000)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config field"):
        ModelConfig.from_dict({**config.to_dict(), "n_layer": 3})
    with pytest.raises(ValueError, match="incomplete model config"):
        ModelConfig.from_dict({"n_layers": 3})


def test_tied_weights_share_storage_and_count_once():
    model = tiny()
    assert model.head.weight is model.token_embedding.weight
    assert model.head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    c = model.config
    d, f = c.d_model, c.d_ff
    attention = (d * 3 * d + 3 * d) + (d * d + d)    # qkv and proj, with their biases
    feed_forward = (d * f + f) + (f * d + d)          # up and down
    block = attention + feed_forward + 2 * 2 * d      # and two layer norms (weight and bias)
    embeddings = c.vocab_size * d + c.context_length * d   # the head is the token embedding: no more
    assert model.num_params() == embeddings + c.n_layers * block + 2 * d   # + the final norm


def test_initial_loss_is_close_to_ln_vocab():
    model = TinyLM(ModelConfig.preset("t4", vocab_size=VOCAB_SIZE)).eval()
    ids = torch.randint(0, VOCAB_SIZE, (4, 64))
    with torch.no_grad():
        _, loss = model(ids[:, :-1], ids[:, 1:])
    assert abs(loss.item() - math.log(VOCAB_SIZE)) < 0.1 * math.log(VOCAB_SIZE)


def test_ignored_targets_do_not_contribute():
    model = tiny()
    ids = torch.randint(0, 300, (2, 10))
    targets = torch.randint(0, 300, (2, 10))
    ignored = targets.clone()
    ignored[:, :6] = IGNORE_INDEX
    logits, loss = model(ids, ignored)
    everywhere, _ = model(ids)
    assert torch.allclose(logits, everywhere[:, 6:].reshape(-1, 300), atol=1e-5)   # the scored rows, in order
    expected = torch.nn.functional.cross_entropy(everywhere[:, 6:].reshape(-1, 300), targets[:, 6:].reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-6)        # the mean over the scored positions only
    assert not torch.allclose(model(ids, targets)[1], loss)  # scoring the first six too would change it


def test_the_output_layer_only_where_scored_gives_the_loss_and_gradients_of_all_positions():
    model = tiny()
    torch.manual_seed(2)
    ids, targets = torch.randint(0, 300, (4, 16)), torch.randint(0, 300, (4, 16))
    targets[torch.rand(4, 16) < 0.4] = IGNORE_INDEX         # as in training: user turns carry no loss
    _, loss = model(ids, targets)
    everywhere, _ = model(ids)                              # the output layer at every position
    reference = torch.nn.functional.cross_entropy(everywhere.flatten(0, 1), targets.flatten(),
                                                  ignore_index=IGNORE_INDEX)
    assert torch.allclose(loss, reference, atol=1e-6)
    for ours, theirs in zip(torch.autograd.grad(loss, model.parameters()),
                            torch.autograd.grad(reference, model.parameters())):
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-7)


def test_targets_are_not_shifted_by_the_model():
    model = tiny()
    ids = torch.randint(0, 300, (1, 8))
    targets = torch.randint(0, 300, (1, 8))
    logits, loss = model(ids, targets)
    manual = -torch.log_softmax(logits, -1)[torch.arange(8), targets[0]].mean()   # row t predicts targets[0, t]
    assert torch.allclose(loss, manual, atol=1e-6)


def test_the_model_memorises_one_batch():
    model = tiny(n_layers=2, d_model=64, d_ff=256)
    torch.manual_seed(1)
    ids = torch.randint(0, 300, (4, 33))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        _, loss = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_save_and_load_gives_identical_logits(tmp_path):
    model = tiny()
    save_model(model, str(tmp_path / "model.safetensors"))
    restored = tiny(vocab_size=300)
    torch.nn.init.zeros_(restored.token_embedding.weight)
    load_model(restored, str(tmp_path / "model.safetensors"))
    ids = torch.randint(0, 300, (2, 12))
    assert torch.equal(model(ids)[0], restored(ids)[0])
    assert restored.head.weight.data_ptr() == restored.token_embedding.weight.data_ptr()


def test_kv_caches_give_the_same_logits_as_a_full_pass():
    model = tiny().eval()
    ids = torch.randint(0, 300, (2, 20))
    caches = model.new_kv_caches()
    with torch.no_grad():
        full, _ = model(ids)
        steps = [model(ids[:, :12], kv_caches=caches)[0]] + [model(ids[:, t:t + 1], kv_caches=caches)[0]
                                                              for t in range(12, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_too_long_input_is_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match="33 tokens do not fit in the context of 32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    caches = model.new_kv_caches()
    model(torch.zeros(1, 30, dtype=torch.long), kv_caches=caches)
    with pytest.raises(ValueError, match="do not fit"):
        model(torch.zeros(1, 3, dtype=torch.long), kv_caches=caches)


def test_layer_norm_by_hand_matches_pytorch():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4 + 2
    norm = LayerNorm(16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    reference = torch.nn.LayerNorm(16)
    reference.load_state_dict(norm.state_dict())
    assert torch.allclose(layer_norm(x, norm.weight, norm.bias), reference(x), atol=1e-5)
    assert torch.allclose(norm(x), reference(x), atol=1e-6)


def test_residual_projections_start_smaller():
    model = TinyLM(ModelConfig.preset("t4", VOCAB_SIZE))
    block = model.blocks[0]
    assert abs(block.attention.qkv.weight.std().item() - 0.02) < 0.002
    assert abs(block.attention.proj.weight.std().item() - 0.02 / math.sqrt(12)) < 0.001
    assert torch.all(block.attention.qkv.bias == 0)


def test_flops_per_token_matches_the_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    # the t4 shape: PyTorch's counter sees the fused attention kernel it picks for 64-wide heads
    model = TinyLM(ModelConfig.preset("t4", VOCAB_SIZE))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 128, dtype=torch.long))
    assert 3 * counter.get_total_flops() == flops_per_token(model.config) * 128


def test_steering_adds_each_vector_after_its_number_of_blocks_at_every_position():
    model = tiny(n_layers=3).eval()
    ids = torch.randint(0, 300, (2, 9))
    vectors = {0: torch.randn(32), 2: torch.randn(32)}
    x = model.token_embedding(ids) + model.position_embedding(torch.arange(9))
    with torch.no_grad():   # by hand: the blocks run on the stream, a vector is added where it is named
        x = x + vectors[0]
        for done, block in enumerate(model.blocks, start=1):
            x = block(x) + vectors.get(done, 0)
        by_hand = model.head(model.final_norm(x))
        steered, _ = model(ids, steer=vectors)
        plain, _ = model(ids)
        zero, _ = model(ids, steer={1: torch.zeros(32)})
    torch.testing.assert_close(steered, by_hand, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(steered, plain, atol=1e-3) and torch.equal(zero, plain)


def test_steered_kv_caches_give_the_steered_full_pass():
    model = tiny().eval()
    ids, steer = torch.randint(0, 300, (2, 20)), {1: 3 * torch.randn(32)}
    caches = model.new_kv_caches()
    with torch.no_grad():
        full, _ = model(ids, steer=steer)
        steps = [model(ids[:, :12], kv_caches=caches, steer=steer)[0]] + \
                [model(ids[:, t:t + 1], kv_caches=caches, steer=steer)[0] for t in range(12, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_steering_where_there_is_no_block_is_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"cannot steer after 3 blocks: this model has 2 \(0 steers the embeddings\)"):
        model(torch.zeros(1, 4, dtype=torch.long), steer={3: torch.zeros(32)})
    with pytest.raises(ValueError, match=r"a steering vector is 32 numbers.*got shape \(3, 32\)"):
        model(torch.zeros(1, 4, dtype=torch.long), steer={1: torch.zeros(3, 32)})   # a whole direction, not one row
