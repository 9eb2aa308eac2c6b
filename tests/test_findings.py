"""The findings the book's prose draws from its numbers hold for the numbers the book shows.

A chapter glues each number it quotes (tinyllm.book.glue); the book shows the values stored in the
chapters, which `make execute` computes: chapters 6 to 9 on the reference runs shipped with the
library, chapter 5 and chapter 9's Mochi on the runs they train. Where the text interprets those
numbers ("each layer raises it", "capitals cost the most"), the test below checks the interpretation
against the stored values, so a re-execution that changes the finding fails here, not in a reader's
cell: the reader's own run may differ, and the reader's cells check the reader's code.
"""
import ast

import pytest

from tinyllm.distributed import SAME_WEIGHTS
from tinyllm.train import REPLY_TOKENS, TRAIN_PRESETS

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
    assert v["food_entropy"] < v["food_uniform_entropy"] - 2, "far below as many equally likely replies"


def test_chapter_2_vocabulary_near_the_knee():
    v = values("02")
    assert 0.95 < v["vocab_share"] < 1 and v["vocab_knee"] <= 2560 <= v["vocab_99"]


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
    assert v["deeper_slowdown"] > 1.2, "two layers run clearly more tokens per second than four"
    assert v["widths_padded"] < v["widths_raw"], "padding to a multiple of 8 leaves fewer widths"
    assert 0 < v["cpu_passes"] < 3 and v["n_train"] > 50_000, "too few passes over the data to memorise it"
    losses = v["reply_only_losses"]
    assert losses["replies only"] < losses["all tokens"], "exercise 2: training on all tokens is worse at replies"
    assert v["batch_losses"]["64"] < v["batch_losses"]["32"], "exercise 3: twice the batch lowers the loss"
    assert v["warmup_early"]["without"] < v["warmup_early"]["with"], "exercise 1: without warm-up the first steps go faster"
    assert 2 < v["reference_mb"] < 8
    assert v["reply_tokens_max"] == REPLY_TOKENS, "the room left for a reply is Finn's longest reply"
    assert v["both_kept_40"] > 0.9 > 0.3 > v["both_kept_64"], "40 tokens keep both earlier exchanges, 64 a fifth"
    assert v["fits_context"] > 0.99 and v["prompt_room"] == 128 - REPLY_TOKENS
    # where a step's time goes (benchmarks/train_step.py, shipped)
    assert max(v["step_attention"], v["step_output"], v["step_feed_forward"]) < 0.4 < 1 - v["step_small"], \
        "three parts share most of a step; no single part dominates"
    assert v["step_small"] > 0.1
    assert v["gather_speedup"] > 1.05, "the output layer only at loss positions pays"
    assert abs(v["fused_speedup"] - 1) < 0.1 and abs(v["foreach_speedup"] - 1) < 0.1, "AdamW's variants: noise"
    assert v["compile_speedup"] < 1.15 and v["half_threads_speedup"] < 1, "neither pays"
    # the shipped curve chapter 5 plots: means over three seeds (half and twice the steps: one seed)
    for rate in ("held_out_in_character", "hand_written_in_character"):
        half, budget, double = (v[f"curve_{n}_{rate}"] for n in ("half", "preset", "double"))
        assert budget - half > double - budget > 0, "still steep at the budget; the first minutes buy the most"
        assert v[f"curve_before_{rate}"] > budget, "the minute more of the recipe before buys several points"
    assert v["curve_half_held_out_in_character"] < v["curve_preset_held_out_in_character"] / 2, "half is far worse"
    assert v["curve_preset_minutes"] < 5 < v["curve_before_minutes"], "in the budget; the one before was over it"
    assert 0.4 < v["curve_preset_held_out_in_character"] < 0.6, "on topic about half the time"
    # the floor (chapter 1's reply_odds): below the run's losses, and not helped by knowing the topic
    assert 0 < v["floor_seen"] < v["test_loss_seen"] and 0 < v["floor_unseen"] < v["test_loss_unseen"]
    assert v["questions_with_two_topics"] < 20, "the topic is nearly always in the question"
    assert abs(v["floor_seen"] - v["floor_unseen"]) < 0.01, "the floor is the same for both wordings"
    assert 0 < v["floor_covered"] < 1 and v["unseen_gap_per_reply"] > 0   # (quoted: the way down, the gap per reply)


def test_chapter_6_findings():
    v = values("06")
    assert v["cache_speedup"] > 1
    rates = v["sampling_in_character"]
    assert v["default_in_character"] >= rates["T 1.5, no limits"], "hotter sampling is not better"
    assert v["defaults_minus_hot_low"] > 0, "the defaults beat T = 1.5 beyond the noise"
    assert v["defaults_minus_greedy_low"] < 0 < v["defaults_minus_greedy_high"], "defaults and greedy: within the noise"
    assert abs(v["history_after2"] - v["history_alone"]) <= 0.05, "two earlier exchanges barely move the last answer"
    assert abs(v["history_after1"] - v["history_alone"]) <= 0.05
    assert v["history_both_kept"] > 0.8, "the prompt holds both earlier exchanges for most questions"
    assert v["beam_logprob"] > v["greedy_logprob"], "beam search found a more probable reply than greedy"


def test_chapter_7_findings():
    v = values("07")
    peak = v["peak_by_layer"]
    last = f"layer {len(peak) - 1}"
    assert len(peak) == 6, "the chapter reads the six-layer Finn"
    assert max(peak[:3]) < 0.5 and all(0.45 <= x <= 0.55 for x in peak[3:]), "under half, then about half"
    assert min(peak[3:]) > max(peak[:3]), "the last three look more sharply"
    assert v["keyword_layer"] == 0 and v["keyword_ratio"] > 4, "a first-layer head reads the key word"
    assert v["reader_top_word"] in {"meaning", "life"}, "the keyword reader looks at 'meaning' or 'life'"
    assert v["previous_share_later"] < 0.5 and v["previous_max"] < 0.3, "weak: no head gives it more than about a quarter"
    assert v["food_rank_embeddings"] > 100, "after the embeddings 'food' is far down the list"
    assert v["food_first_top_after"] == "no layer", "for this wording 'food' never reaches the top"
    assert v["food_peak_after"] not in {"embeddings", "layer 0", last}, "p(food) peaks in the middle of the stack"
    assert "food" in v["final_top4"] and len(set(v["final_top4"]) & {"food", "life", "the", "i"}) >= 3, \
        "the last row's four likeliest are the commonest openings"
    top3 = v["final_top3_probs"]
    assert top3[0] - top3[1] > 2 * (top3[1] - top3[2]), "the last row has one front-runner and two close behind"
    by_layer = v["food_by_layer"]
    top = by_layer.index(max(by_layer))
    assert v["food_mean_peak_after"] == f"layer {top - 1}" and 1 < top < len(by_layer) - 1
    assert by_layer[:top + 1] == sorted(by_layer[:top + 1]), "over the wordings, p(food) rises to its peak"
    assert by_layer[top:] == sorted(by_layer[top:], reverse=True), "and the layers above lower it"
    the, i = v["the_by_layer"], v["i_by_layer"]
    assert the[-1] > the[top] and i[-1] > i[top], "the last layers move probability to 'the' and 'i'"
    assert v["food_final_mean"] < v["food_in_data"], "the mean p(food) ends below the data's share"
    assert v["food_final_below_data"] > v["n_wordings"] / 2, "for most wordings p(food) is below the data's share"
    assert v["food_embeddings_max"] < 0.01 and v["lens_same_token"] > 0.9, "the embeddings name the current token"
    assert v["food_top4_final"] > v["n_wordings"] / 2, "'food' ends among the top four for most wordings"
    assert v["food_top_final"] < v["n_wordings"] / 2, "'food' ends at the top for only a few wordings"
    assert v["opening_share"] > 0.5, "most training replies start with one of the four openings"
    assert v["cluster_ratio_food"] > 2 and v["cluster_ratio_human_things"] > 2, "food words and human things cluster"
    assert len(v["near_food_words"]) >= 2
    assert any(t.strip().lower().startswith("hap") for t in v["near_happy"]), "'happy' sits next to its spellings"
    assert v["worst_component"] == "L0 FF" and v["worst_loss_ratio"] > 5, "the first feed-forward layer is vital"
    ff = v["ff_damage"]
    assert ff[-1] == max(ff[1:]) > v["head_max_damage"], "the next costliest is the last feed-forward layer"
    assert ff[-1] < 0.1, "it adds a few hundredths of a nat"
    assert v["head_max_damage"] == v["first_heads_max_damage"] > v["later_heads_max_damage"], \
        "the costliest heads sit in the first layer"
    assert v["head_max_damage"] < 0.01, "a few thousandths of a nat"
    assert abs(v["head_median_damage"]) < v["head_max_damage"] / 10, "the median head next to nothing"
    assert v["p_food_without_last_ff"] > v["intact_p_food"] + 0.03, "without the last feed-forward layer p(food) rises"
    assert v["mention_food"] == 1.0



def test_chapter_7_steering():
    v = values("07")
    scales, control, points = v["steer_by_scale"], v["steer_by_scale_random"], v["steer_by_point"]
    scale, broken = str(v["steer_scale"]), str(v["steer_break_scale"])
    assert v["steer_topics"] > 12 and v["food_direction_share_embeddings"] < v["food_direction_share"] < 0.5, \
        "short next to the stream, and shorter still at the embeddings"
    assert scales["0"]["about food"] == v["steer_food_before"] < 0.1, "asked about other things, he rarely talks food"
    assert v["steer_food"] == scales[scale]["about food"] and v["steer_food_low"] > 0.5, "steered, most replies are"
    assert v["steer_food_low"] < v["steer_food"] < v["steer_food_high"]
    assert v["steer_well_formed"] == scales[scale]["well-formed"] >= 0.9, "and still in his voice"
    assert abs(v["steer_distinct"] - v["steer_distinct_before"]) < 0.15, "the share of distinct replies hardly moves"
    assert abs(v["steer_push_share"] - v["steer_scale"] * v["food_direction_share"]) < 1e-9 and \
        v["steer_push_share"] > 0.5, "the push is not small next to the stream"
    assert float(broken) > float(scale) and v["steer_broken_well_formed"] == scales[broken]["well-formed"] < 0.5, \
        "a larger scale breaks them"
    assert v["steer_broken_distinct"] == scales[broken]["distinct"] < v["steer_distinct_before"] / 2, "few differ"
    assert float(broken) <= 2 * float(scale), "the window runs from about the scale to the break"
    assert max(scales[s]["about food"] for s in scales if float(s) > float(broken)) < 0.05, \
        "at larger scales they stop being about food"
    assert all(scores["about food"] <= 0.05 for scores in control.values()), "a random direction: no food"
    assert v["random_food_max"] <= 0.05 and v["random_well_formed_at_break"] >= 0.9, \
        "and as long as the one that broke them, it leaves them well-formed"
    best, names = v["steer_best_layer"], list(points)
    assert points[best]["about food"] == v["steer_best_layer_food"] == max(p["about food"] for p in points.values())
    assert best == "layer 0", "after the first block, where `steered` adds it unless told"
    low = v["steer_best_layer_low"]   # the low end of its 95% interval
    close = [name for name in names if name != best and points[name]["about food"] >= low]
    assert v["steer_close_points"] == len(close) >= 2 and close == names[2:2 + len(close)], \
        "the next few points after the best are within its interval"
    assert v["steer_embeddings_food"] == points["embeddings"]["about food"] < low - 0.2, "the embeddings: much less"
    assert v["steer_last_layer_food"] == points[names[-1]]["about food"] < low - 0.2, "the last layer: less too"


def test_chapter_8_findings():
    v = values("08")
    mean = lambda xs: sum(xs) / len(xs)
    assert v["loss_seen"] < v["loss_unseen"], "unseen wordings cost more"
    assert v["salad_topic_words"] > 0, "word salad hits topic words by chance"
    gap = v["finn_in_character"] - v["small_in_character"]
    assert v["finn_in_character"] > 1.8 * v["small_in_character"], "the larger Finn is in character twice as often"
    assert gap > 5 * max(v["large_in_character_spread"], v["small_in_character_spread"]), "many times either spread"
    assert gap > 2 * v["interval_half_width"], "larger than the uncertainty the choice of questions leaves"
    assert v["finn_test_loss"] < v["small_test_loss"], "his test loss is lower too"
    assert round(v["large_params"] / v["small_params"]) == 5, "five times the parameters"
    t4, cpu = TRAIN_PRESETS["t4"], TRAIN_PRESETS["cpu"]
    assert t4.batch_size == 4 * cpu.batch_size and round(t4.steps / cpu.steps) == 2, "four times per step, twice the steps"
    assert round(t4.steps * t4.batch_size / (cpu.steps * cpu.batch_size)) == 9, "about nine times the conversations"
    assert v["finn_format_ok"] > 0.95, "format is learned"
    assert 0 < v["finn_floor_gap"] < 0.1, "his test loss is only a little above the floor"
    assert v["floor_test_loss"] < min(v["finn_test_loss"], v["small_test_loss"]), "no model below the floor"
    assert v["floor_test_loss_unseen"] < v["loss_unseen"], "nor on unseen wordings"
    assert 0.25 < 1 - v["finn_topic_accuracy"] < 0.34, "yet nearly a third of his replies are off topic"
    assert abs(v["finn_copied"] + v["finn_composed"] + v["finn_not_for_question"] - 1) < 1e-9
    assert v["data_not_for_question"] == 0 and abs(v["data_copied"] - v["data_copy_rate"]) < 0.1
    assert 0.25 < v["finn_composed"] / v["data_composed"] < 0.42, "he composes about a third as often as the data"
    assert abs(v["finn_not_for_question"] - (1 - v["finn_topic_accuracy"])) < 0.05, "the two checks agree"
    assert v["finn_in_character"] < v["data_in_character"] - 0.15, "persona is still the hard part"
    plain, upper, typos = v["finn_in_character"], v["finn_robust_uppercase"], v["finn_robust_typos"]
    assert abs(upper - typos) < 0.05 and max(upper, typos) < plain - 0.1, "capitals and typos cost about the same, far more"
    assert v["finn_robust_punctuation"] > plain - 0.05, "odd punctuation costs little"
    assert v["small_robust_uppercase"] / v["small_in_character"] < upper / plain, "capitals cost the smaller a larger share"
    assert v["tenth_deflection"] > 0.5 and v["tenth_in_character"] < 0.1, "the tenth deflects without being on topic"
    assert v["data_copy_rate"] + 0.05 < v["finn_copy_rate"], "his replies equal a training reply more often"
    assert v["data_copy_rate"] < v["small_copy_rate"], "the smaller Finn's too"
    assert abs(v["finn_distinct_1"] - v["data_distinct_1"]) < 0.05, "his words are about as varied as the data's"
    assert v["finn_distinct_2"] < v["data_distinct_2"], "his word pairs are less varied"
    assert v["finn_repetition"] < 0.05, "few replies loop"
    everything, half = v["readable_all"], v["readable_half"]
    assert min(everything) <= max(half) and min(half) <= max(everything), "the two ranges overlap"
    assert abs(mean(everything) - mean(half)) < min(max(everything) - min(everything), max(half) - min(half)), \
        "the held-out wordings move the share more than halving the ways of asking"
    assert v["small_topic_accuracy"] < v["question_only"] - 0.2, "the smaller Finn is far below the question-only reader"
    assert 0 < v["question_only"] - v["finn_topic_accuracy"] <= v["interval_half_width"] + 0.01, \
        "the larger comes within a few points of it, about the uncertainty of 200 questions"
    assert 0 < v["fresh_in_training"] < v["fresh_total"]
    assert v["fresh_all_rate"] > v["fresh_unseen_rate"], "the fresh questions the data contains raise the rate"
    assert v["fresh_unseen_rate"] - v["finn_in_character"] > 2 * v["interval_half_width"], \
        "on the hand-written questions far more often than on held-out wordings: more than twice the uncertainty"
    assert v["interval_half_width"] > 2.5 * v["seed_spread"], "the interval is several times the spread over seeds"


def test_chapter_9_findings():
    v = values("09")
    assert v["mochi_in_character"] > v["finn_in_character"] + 0.15, "Mochi far more often in character"
    for rewrite in ("uppercase", "typos", "punctuation"):
        assert v[f"mochi_robust_{rewrite}"] > v[f"finn_robust_{rewrite}"], f"Mochi better on every rewrite: {rewrite}"
    assert v["mochi_deflection"] < v["finn_deflection"], "not on everything: Mochi deflects fewer"
    assert v["mochi_topics"] < v["finn_topics"] / 2, "fewer than half the topics"
    assert v["mochi_per_topic"] > 2 * v["finn_per_topic"], "more than twice the conversations per topic"
    assert v["mochi_asks_per_topic"] < v["finn_asks_per_topic"] / 4, "far fewer ways of asking"
    assert v["mochi_per_topic"] / v["mochi_asks_per_topic"] > 5 * v["finn_per_topic"] / v["finn_asks_per_topic"], \
        "each of Mochi's wordings comes up many more times"
    assert v["half_topics"] == v["mochi_topics"] // 2
    assert v["n_training_seeds"] >= 3, "at least three training seeds a side"
    few, many = (v[f"{side}_test_loss"] + v[f"{side}_test_loss_spread"] * k for side, k in [("few", 1), ("many", -1)])
    assert few < many, "fewer topics: a clearly lower loss, beyond both spreads over training seeds"
    gap = v["few_in_character"] - v["many_in_character"]
    assert gap > 2 * max(v["few_in_character_spread"], v["many_in_character_spread"]), "well beyond either spread"
    assert 2 < gap / max(v["few_in_character_spread"], v["many_in_character_spread"]) < 4, "about three times"
    assert v["many_in_character_spread"] > 0.05, "the runs on all the topics vary a lot from one seed to the next"
    assert abs(v["mochi_copied"] + v["mochi_composed"] + v["mochi_not_for_question"] - 1) < 1e-9
    assert v["mochi_copied"] > 0.5 and v["mochi_composed"] < 0.1, "she copies most replies, composing almost nothing"


@pytest.mark.parametrize("stem", ["05", "09"])
def test_training_times_are_stated_with_the_machine(stem):
    v = values(stem)
    assert 0 < v.get("cpu_seconds", v.get("mochi_seconds", 0)) < 1800
    if stem == "05":
        assert 50 < v["cpu_gflops"] < 100_000
        assert abs(v["cpu_estimate"] - v["cpu_seconds"]) < 0.15 * v["cpu_seconds"], "the step-based estimate holds"


def test_chapter_10_findings():
    v = values("10")
    assert v["hf_logit_difference"] < 1e-4 and v["onnx_logit_difference"] < 1e-4, "within the stated tolerance"
    assert v["template_agree"] == v["template_total"] > 2_000, "the template gives our ids on every test conversation"
    assert v["hf_greedy_same"] == v["hf_greedy_total"] == v["onnx_greedy_same"] >= 20, "the same greedy replies"
    assert v["ort_speedup"] > 1, "ONNX Runtime generates faster than chapter 6's loop"
    assert v["arithmetic_token_us"] < v["ort_token_us"] / 10, "the arithmetic is not what a token's time goes to"
    weights = v["web_weights_mb"]
    assert v["web_mb"] > weights * 4 / 3 > 0.9 * v["web_mb"], "the page is almost all weights, written as base64 text"
    assert 3.5 < v["onnx_mb"] / weights < 4.05, "a byte per weight of a matrix: a quarter of the float32 ONNX file"
    assert 14.2 > v["web_mb"], "the smallest onnxruntime-web WebAssembly file is more than the whole page"
    assert 0 < v["int8_worst_error"] <= 0.5 / 127 + 1e-6, "at most half a step of the row"
    assert v["int8_differ"] > 0, "a small change picks the other of two close tokens: some greedy replies differ"
    assert v["onnx_mb"] > v["web_mb"], "the ONNX file keeps float32 weights"


def test_chapter_11_findings():
    v = values("11")
    assert v["toy_mean"] == 1.75 and v["toy_mean_of_means"] == 2.5, "the small example's arithmetic"
    assert v["tokens_even"] != v["tokens_odd"], "the halves hold different numbers of reply tokens"
    assert v["weighted_gap"] < 1e-5 < v["naive_gap"], "weighting by share is rounding; the mean of means is not"
    assert max(v["gap_two"], v["gap_threads"]) < v["gap_wrong"] / 10, "in float32 the wrong trainer is the furthest"
    assert v["same_weights"] == SAME_WEIGHTS
    assert v["gap64_two"] * 1e6 < v["gap_two"], "rounding shrinks with the precision"
    assert v["gap_wrong"] / 2 < v["gap64_wrong"] < v["gap_wrong"] * 2, "a mistake does not"
    assert v["below_line"] > 1e4 and v["above_line"] > 1e4, "the line is far from both"
    assert v["cores"] == 2, "the text speaks of two processes on two cores"
    assert v["two_vs_half"] > 1, "two processes beat one process on half the threads"
    assert v["two_vs_all"] < 1.5, "two processes on two cores are not twice as fast as one process on both"
    assert 0 < v["allreduce_share"] < 0.5 and v["allreduce_ms"] < v["step_ms_two"], "the all-reduce is part of a step"
    assert abs(v["tps_two"] / v["tps_all"] - v["two_vs_all"]) < 1e-9
