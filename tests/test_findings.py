"""The findings the book's prose draws from its numbers hold for the numbers the book shows.

A chapter glues each number it quotes (tinyllm.book.glue); the book shows the values stored in the
chapters, which `make execute` computes: chapters 6 to 9 on the reference runs shipped with the
library, chapter 5 and chapter 9's Mochi on the runs they train. Where the text interprets those
numbers ("the last layer lowers it", "typos cost the most"), the test below checks the interpretation
against the stored values, so a re-execution that changes the finding fails here, not in a reader's
cell: the reader's own run may differ, and the reader's cells check the reader's code.
"""
import ast

import pytest

from book_pages import CHAPTERS
from test_prose import glued


def values(stem: str) -> dict:
    "The values chapter `stem` glued, as Python values."
    notebook = next(c for c in CHAPTERS if c.stem.startswith(stem))
    return {name: ast.literal_eval(text) for name, text in glued(notebook).items()}   # glue stores plain values


def test_chapter_1_splits_and_variety():
    v = values("01")
    assert v["naive_leaked_inputs"] > 0.1 and v["naive_leaked_pairs"] > 0, "a naive split leaks test rows"
    assert v["closer_share_first"] < v["closer_share_last"] < 0.9, "more closers help, but the share stays far from 100%"
    assert v["n_topics"] > 12


def test_chapter_2_vocabulary_near_the_knee():
    v = values("02")
    assert 0.97 < v["vocab_share"] < 1 and v["vocab_99"] >= 2560


def test_chapter_3_fused_attention_is_faster():
    assert values("03")["sdpa_speedup"] > 1, "the summary says SDPA is faster"


def test_chapter_4_memorises_down_to_the_floor():
    v = values("04")
    assert 0 < v["memorise_floor"] <= v["memorise_final"] < v["memorise_floor"] + 0.02
    assert 0.05 < v["embedding_share"] < 0.2, "the text calls the embedding a small part of the model"


def test_chapter_4_ladder():
    v = values("04")
    assert v["ladder_attention"] > v["ladder_bigram"], "attention without residual connections is worse than a bigram"
    assert v["ladder_feed_forward"] > v["ladder_residual"] + 0.5, "residual connections are the turn"
    assert v["ladder_layernorm"] < v["ladder_residual"] - 0.3, "LayerNorm brings the loss down again"
    assert abs(v["ladder_positions"] - v["ladder_layernorm"]) < 0.15, "positions change little at this budget"
    assert min(v["ladder_losses"].values()) < v["ladder_bigram"] / 2


def test_chapter_5_findings():
    v = values("05")
    assert v["bucket_padding"] < v["random_padding"] / 5, "buckets remove most of the padding"
    assert v["greedy_well_formed"] > 0.95, "the voice is learned"
    assert v["greedy_in_character"] <= v["greedy_on_topic"] < v["greedy_well_formed"], "the topic is the hard part"
    assert v["t4_shape_slowdown"] > 1.5, "the t4 shape is too slow for the cpu budget"
    assert v["widths_padded"] < v["widths_raw"], "padding to a multiple of 8 leaves fewer widths"
    assert 1 < v["cpu_passes"] < 3 and v["n_train"] > 50_000
    losses = v["reply_only_losses"]
    assert losses["replies only"] < losses["all tokens"], "exercise 2: training on all tokens is worse at replies"
    assert v["batch_losses"]["64"] < v["batch_losses"]["32"], "exercise 3: twice the batch lowers the loss"
    assert v["warmup_early"]["without"] < v["warmup_early"]["with"], "exercise 1: without warm-up the first steps go faster"
    assert 4 < v["reference_mb"] < 8


def test_chapter_6_findings():
    v = values("06")
    assert v["cache_speedup"] > 1
    rates = v["sampling_in_character"]
    assert v["default_in_character"] >= rates["T 1.5, no limits"], "hotter sampling is not better"
    assert v["history_after"] < v["history_alone"], "history hurts a model trained on single exchanges"
    assert v["beam_logprob"] > v["greedy_logprob"], "beam search found a more probable reply than greedy"


def test_chapter_7_findings():
    v = values("07")
    peak = v["peak_by_layer"]
    assert peak[0] < min(peak[1:]), "the first layer spreads its attention most"
    assert v["keyword_layer"] == 0 and v["keyword_ratio"] > 4, "a first-layer head reads the key word"
    assert v["reader_top_word"] in {"meaning", "life"}
    assert v["previous_share_later"] >= 0.5 and v["previous_max"] < 0.5
    assert v["food_rank_embeddings"] > 100 and v["food_first_top_after"] == "layer 0"
    assert v["food_peak_after"] not in ("embeddings", f"layer {len(peak) - 1}"), "p(food) peaks before the last layer"
    assert len(set(v["final_top4"]) & {"food", "life", "the", "i"}) >= 3
    top3 = v["final_top3_probs"]
    assert max(top3) - min(top3) < 0.05, "the last row's first three are nearly level"
    by_layer = v["food_by_layer"]
    assert max(by_layer) > by_layer[-1] and by_layer.index(max(by_layer)) < len(by_layer) - 1
    assert v["food_final_mean"] < v["food_in_data"], "the last layer brings p(food) below the data's share"
    assert v["food_final_below_data"] > v["n_wordings"] / 2
    assert v["food_embeddings_max"] < 0.01 and v["lens_same_token"] > 0.9
    assert v["food_top4_final"] >= 0.9 * v["n_wordings"] and v["opening_share"] > 0.5
    assert v["cluster_ratio_food"] > 2 and v["cluster_ratio_human_things"] > 2, "food words and human things cluster"
    assert len(v["near_food_words"]) >= 2
    assert any(t.strip().lower().startswith("hap") for t in v["near_happy"]), "'happy' sits next to its spellings"
    assert v["worst_component"] == "L0 FF" and v["worst_loss_ratio"] > 5, "the first feed-forward layer is vital"
    assert v["first_heads_min_damage"] > v["later_heads_max_damage"], "the first layer's heads matter most"
    assert v["later_vs_first"] < 0.5, "the later heads barely matter one at a time"
    assert v["mention_food"] == 1.0


def test_chapter_8_findings():
    v = values("08")
    assert v["loss_seen"] < v["loss_unseen"]
    assert v["cpu_format_ok"] > 0.95, "format is learned"
    assert v["cpu_in_character"] < v["data_in_character"] - 0.15, "persona is the hard part"
    robust = [v["cpu_robust_uppercase"], v["cpu_robust_punctuation"], v["cpu_robust_typos"]]
    assert min(robust) == v["cpu_robust_typos"], "typos cost the most"
    assert v["tenth_deflection"] > 0.5 and v["tenth_in_character"] < 0.1, "the tenth deflects without being on topic"
    assert v["cpu_deflection"] >= v["tenth_deflection"]
    assert v["data_copy_rate"] < v["cpu_copy_rate"] < v["data_copy_rate"] + 0.3, "the run copies a little more often"
    assert v["cpu_distinct_2"] < v["data_distinct_2"] and abs(v["cpu_distinct_1"] - v["data_distinct_1"]) < 0.05
    assert v["cpu_repetition"] < 0.05, "few replies loop"
    assert min(v["readable_all"]) > max(v["readable_half"]), "more ways of asking make new wordings easier to read"
    assert abs(v["cpu_topic_accuracy"] - v["question_only"]) < 0.1, "the run is close to the question-only classifier"
    assert v["fresh_unseen_rate"] > v["cpu_in_character"], "fresh questions are easier than held-out wordings"
    assert 0 < v["fresh_in_training"] < v["fresh_total"]
    assert v["interval_half_width"] > 3 * v["seed_spread"], "the interval is far wider than the spread over seeds"
    assert v["salad_topic_words"] > 0.05, "word salad hits topic words by chance"


def test_chapter_9_findings():
    v = values("09")
    assert v["finn_in_character"] < v["mochi_in_character"] < v["finn_in_character"] + 0.15, "Mochi a little better"
    assert v["mochi_robust_uppercase"] > v["finn_robust_uppercase"] and v["mochi_robust_typos"] > v["finn_robust_typos"]
    assert v["mochi_robust_punctuation"] < v["finn_robust_punctuation"] and v["mochi_deflection"] < v["finn_deflection"], \
        "not on everything"
    assert v["mochi_per_topic"] > 2 * v["finn_per_topic"] and v["mochi_asks_per_topic"] < v["finn_asks_per_topic"]
    assert v["few_test_loss"] < v["many_test_loss"] - 0.01, "fewer topics: a clearly lower loss"
    assert v["few_in_character"] > v["many_in_character"], "fewer topics: in character more often here"
    assert v["mochi_topics"] < v["finn_topics"] and v["half_topics"] == v["mochi_topics"] // 2


@pytest.mark.parametrize("stem", ["05", "09"])
def test_training_times_are_stated_with_the_machine(stem):
    v = values(stem)
    assert 0 < v.get("cpu_seconds", v.get("mochi_seconds", 0)) < 1800
    if stem == "05":
        assert 50 < v["cpu_gflops"] < 100_000
