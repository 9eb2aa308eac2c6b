"""Chapter 7: tracing, attention maps, the logit lens, embeddings, ablation and steering (tinyllm/interpret.py)."""
import matplotlib
import pytest
import torch
from safetensors.torch import save_model

import tinyllm
from tinyllm.data import generate_conversations
from tinyllm.generate import ChatModel
from tinyllm.interpret import (STEERING_FILE, ablate, attention_grid, attention_maps, chat_ids, components,
                               embedding_projection, logit_lens, nearest_neighbours, run_directions, steered,
                               token_labels, topic_directions, topic_means, trace)
from tinyllm.model import ModelConfig, TinyLM
from tinyllm.runs import run_path
from tinyllm.tokenizer import train_tokenizer

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(generate_conversations(1_000, seed=0), vocab_size=400)


@pytest.fixture()
def model(tok):
    "A small untrained model (random weights are enough: these are identities, not findings)."
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=448, n_layers=3, d_model=32, n_heads=4, d_ff=64, context_length=64, dropout=0.0)
    return TinyLM(config).eval()


@pytest.fixture()
def ids(tok):
    return chat_ids(tok, "what is the meaning of life?", "food. always food.")


def model_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0][0]


def test_chat_ids_match_the_training_layout(tok):
    prompt = chat_ids(tok, "hi finn")
    full = chat_ids(tok, "hi finn", "blub. hi.")
    assert full[:len(prompt)] == prompt and prompt == tok.encode_chat([{"role": "user", "content": "hi finn"}], True)
    assert token_labels(tok, tok.encode(" food")) == ["·food"]


def test_trace_ends_in_the_models_own_logits(model, ids):
    recorded = trace(model, ids)
    c = model.config
    assert recorded.residuals.shape == (c.n_layers + 1, len(ids), c.d_model)
    final = model.head(model.final_norm(recorded.residuals[-1]))
    torch.testing.assert_close(final, model_logits(model, ids), atol=1e-5, rtol=1e-5)


def test_logit_lens_at_the_last_layer_is_the_model(model, ids):
    lens = logit_lens(model, ids)
    assert lens.shape == (model.config.n_layers + 1, len(ids), model.config.vocab_size)
    torch.testing.assert_close(lens[-1], model_logits(model, ids), atol=1e-5, rtol=1e-5)
    # and not trivially so: earlier layers read differently
    assert not torch.allclose(lens[0], lens[-1], atol=1e-3)


def test_attention_maps_are_causal_distributions(model, ids):
    maps = attention_maps(model, ids)
    c, n = model.config, len(ids)
    assert maps.shape == (c.n_layers, c.n_heads, n, n)
    torch.testing.assert_close(maps.sum(-1), torch.ones(c.n_layers, c.n_heads, n))
    assert (maps >= 0).all() and (maps.triu(diagonal=1) == 0).all()
    assert maps[..., 0, 0].eq(1).all()   # the first token can only look at itself


def test_attention_grid_draws_every_head(model, tok, ids):
    fig = attention_grid(model, tok, ids)
    assert len(fig.axes) == model.config.n_layers * model.config.n_heads


def test_component_names_and_bad_names(model):
    names = components(model)
    assert names[:5] == ["L0 H0", "L0 H1", "L0 H2", "L0 H3", "L0 FF"] and len(names) == 3 * 5
    for bad in ["L3 H0", "L0 H4", "layer 0", "L0 ff", ""]:
        with pytest.raises(ValueError, match="unknown component"):
            with ablate(model, bad):
                pass


def test_ablate_changes_the_output_and_restores_weights_exactly(model, ids):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    intact = model_logits(model, ids)
    with ablate(model, "L1 H2", "L2 FF"):
        changed = model_logits(model, ids)
    assert not torch.allclose(intact, changed)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(model_logits(model, ids), intact)


def test_ablate_restores_weights_after_an_error(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError):
        with ablate(model, "L0 H1"):
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_head_ablation_removes_exactly_that_heads_contribution(model, ids):
    "Zeroing head h's slice of the output projection equals dropping h's output before the projection."
    block = model.blocks[1]
    attn = block.attention
    x = torch.randn(1, len(ids), model.config.d_model)
    with torch.no_grad():
        q, k, v = map(attn.split_heads, attn.qkv(x).chunk(3, dim=-1))
        heads = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        heads[:, 2] = 0
        expected = attn.proj(attn.merge_heads(heads))
        with ablate(model, "L1 H2"):
            got = attn(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_feed_forward_ablation_outputs_zeros(model):
    with ablate(model, "L0 FF"), torch.no_grad():
        assert model.blocks[0].feed_forward(torch.randn(2, 5, model.config.d_model)).abs().max() == 0


def test_embedding_projection_is_a_pca(model):
    ids = list(range(40))
    xy = embedding_projection(model, ids)
    assert xy.shape == (40, 2)
    torch.testing.assert_close(xy.mean(0), torch.zeros(2), atol=1e-5, rtol=0)   # centred
    assert xy[:, 0].var() >= xy[:, 1].var()                                      # most variance first
    assert abs(float(xy[:, 0] @ xy[:, 1])) < 1e-3                                # uncorrelated directions


def test_nearest_neighbours(model, tok):
    neighbours = nearest_neighbours(model, tok, " food", k=5)
    assert len(neighbours) == 5 and neighbours[0] == (" food", pytest.approx(1.0, abs=1e-4))
    assert [s for _, s in neighbours] == sorted((s for _, s in neighbours), reverse=True)
    with pytest.raises(ValueError, match="not one"):
        nearest_neighbours(model, tok, "the meaning of life")


@pytest.fixture(scope="module")
def rows():
    return generate_conversations(1_000, seed=0)["train"].to_dict()


def test_a_topic_mean_is_the_mean_stream_over_the_positions_that_write_its_replies(model, tok, rows):
    means = topic_means(model, tok, rows, per_topic=3)
    assert set(means) == set(rows["category"])
    c = model.config
    assert all(mean.shape == (c.n_layers + 1, c.d_model) for mean in means.values())
    topic = rows["category"][0]   # by hand, one conversation at a time with trace
    chosen = [(m, r) for m, r, t in zip(rows["input"], rows["output"], rows["category"]) if t == topic][:3]
    assistant, end = tok.special_tokens["<|assistant|>"], tok.special_tokens["<|end|>"]
    by_hand = 0
    for message, reply in chosen:   # the positions from <|assistant|> up to the reply's last token, <|end|> left out
        ids = chat_ids(tok, message, reply)
        assert ids.count(assistant) == 1 and ids[-1] == end
        by_hand = by_hand + trace(model, ids).residuals[:, ids.index(assistant):len(ids) - 1].mean(1) / 3
    torch.testing.assert_close(means[topic], by_hand, atol=1e-5, rtol=1e-4)


def test_topic_directions_are_each_mean_against_the_others_and_sum_to_zero():
    torch.manual_seed(0)
    means = {name: torch.randn(3, 8) for name in "abcd"}
    directions = topic_directions(means)
    torch.testing.assert_close(directions["a"], means["a"] - (means["b"] + means["c"] + means["d"]) / 3)
    torch.testing.assert_close(sum(directions.values()), torch.zeros(3, 8), atol=1e-5, rtol=0)


def test_steered_adds_the_scaled_direction_after_its_block_and_rejects_a_missing_one(model, tok):
    chat = ChatModel(model, tok)
    direction = torch.randn(model.config.n_layers + 1, model.config.d_model)
    push = steered(chat, direction, 2.5, after=2)
    assert push.model is model and set(push.steer) == {2}
    torch.testing.assert_close(push.steer[2], 2.5 * direction[2])
    plain = chat.reply("are you hungry?", temperature=0, max_new_tokens=8)
    assert steered(chat, direction, 0.0).reply("are you hungry?", temperature=0, max_new_tokens=8) == plain
    assert chat.steer is None, "steering makes a new chat; the one it came from is unchanged"
    twice = steered(steered(chat, direction, 1.0, after=2), direction, -3.0, after=2)
    torch.testing.assert_close(twice.steer[2], -2.0 * direction[2])   # pushes add up

    class OwnStep(ChatModel):   # as chapter 10's OnnxChat: a step that is not the model's forward
        def step(self):
            return lambda new: None
    with pytest.raises(ValueError, match="a OwnStep runs its own step, which cannot steer"):
        steered(OwnStep(model, tok), direction, 1.0)
    for after in (-1, model.config.n_layers + 1):
        with pytest.raises(ValueError, match=f"cannot steer after {after} blocks: this model has 3"):
            steered(chat, direction, 1.0, after=after)


@pytest.mark.slow
def test_run_directions_are_computed_once_then_read_and_survive_a_folder_we_cannot_write(tmp_path, monkeypatch):
    import shutil

    import tinyllm.interpret

    run = tmp_path / "finn-cpu"
    shutil.copytree(run_path("finn-cpu"), run, ignore=shutil.ignore_patterns(STEERING_FILE))
    computed = run_directions(run)
    assert (run / STEERING_FILE).is_file() and not list(run.glob("*.partial"))
    assert set(computed) == {topic.name for topic in tinyllm.load(run).character.topics}
    read = run_directions(run)
    assert read.keys() == computed.keys() and all(torch.equal(read[t], computed[t]) for t in read)
    weights = run / "model.safetensors"   # other weights (a run retrained in place): the kept ones are stale
    original = weights.read_bytes()
    model = tinyllm.load(run, device="cpu").model
    with torch.no_grad():
        model.blocks[0].feed_forward.down.bias.add_(1.0)
    save_model(model, str(weights))
    changed = run_directions(run)
    assert not all(torch.equal(changed[t], computed[t]) for t in changed), "recomputed from the new weights"
    weights.write_bytes(original)
    (run / STEERING_FILE).unlink()

    def cannot_write(tensors, path, metadata=None):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(tinyllm.interpret, "save_file", cannot_write)
    again = run_directions(run)
    assert not (run / STEERING_FILE).exists() and not list(run.glob("*.partial"))
    assert all(torch.equal(again[t], computed[t]) for t in again)
