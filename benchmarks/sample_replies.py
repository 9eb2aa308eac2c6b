"""Chapter 8: replies per second when the scoreboard samples prompts in batches, against one at a time.

`sample_replies` groups prompts of equal token length and samples each group as one batch
(`ChatModel.generate`, chapter 6's `decode`); the baseline is the same loop for one prompt after
another, with the same seeds. Both run on the shipped reference Finn (which ends
its replies) and on an untrained model of the same shape (which never ends them, so every
reply runs to the token limit: the scoreboard's slowest row), for 200 unseen-wording questions.

Prints replies per second and the ratio batched / one at a time, and checks that both give the
same replies.
"""
import torch

from timing import median_time
from tinyllm.data import generate_conversations, unseen_questions
from tinyllm.evaluate import Reply, sample_replies
from tinyllm.generate import MAX_NEW_TOKENS, ChatModel, load
from tinyllm.model import TinyLM

PROMPTS, REPEATS = 200, 3


def one_at_a_time(chat: ChatModel, prompts: list[tuple[str, str]], seed: int = 0) -> list[Reply]:
    replies = []
    for i, (message, topic) in enumerate(prompts):
        prompt = chat.prompt_ids([{"role": "user", "content": message}], MAX_NEW_TOKENS)
        [(ids, ended)] = chat.generate([prompt], seeds=[seed * 1_000_003 + i])
        replies.append(Reply(message, topic, chat.tok.decode(ids), ended))
    return replies


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {PROMPTS} prompts, "
          f"up to {MAX_NEW_TOKENS} new tokens each")
    finn = load("finn", device="cpu")
    torch.manual_seed(0)
    untrained = ChatModel(TinyLM(finn.model.config).eval(), finn.tok)
    prompts = unseen_questions(generate_conversations(), PROMPTS)
    for name, chat in [("reference finn", finn), ("untrained", untrained)]:
        alone_s, alone = median_time(lambda: one_at_a_time(chat, prompts), REPEATS)
        batched_s, batched = median_time(lambda: sample_replies(chat, prompts), REPEATS)
        same = sum(a == b for a, b in zip(alone, batched))
        print(f"{name:>14}: one at a time {PROMPTS / alone_s:,.0f} replies/s, batched {PROMPTS / batched_s:,.0f} "
              f"replies/s -> batched / one at a time = {alone_s / batched_s:.1f}; same replies: {same}/{PROMPTS}")


if __name__ == "__main__":
    main()
