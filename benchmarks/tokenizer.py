"""Chapter 2's budget: our tokenizer trains and encodes faster than Hugging Face `tokenizers` on our data.

Both train a byte-level BPE with the same pre-tokenizer regex, the same special tokens
and the same vocabulary target on all 120,000 texts (messages and replies) of the 60K
corpus, then encode all 60,000 conversations in the chat format. Each step is timed
`REPEATS` times with a fresh tokenizer (so our encode caches start empty) and the
median is reported. Ratios are ours / theirs: below 1.0 means we are faster.
"""
import os

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from tinyllm.chat_format import chat_text
from tinyllm.data import generate_conversations
from tinyllm.tokenizer import PATTERN, SPECIAL_TOKENS, VOCAB_SIZE, Tokenizer
from timing import median_time

REPEATS = 5


def hf_train(texts: list[str], vocab_size: int) -> HFTokenizer:
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def encode_all(tokenizer: Tokenizer, conversations: list[list[dict]]) -> list[list[int]]:
    return [tokenizer.encode_chat(messages) for messages in conversations]


def main():
    data = generate_conversations()
    rows = [r for ds in data.values() for r in ds.to_list()]
    texts = [r["input"] for r in rows] + [r["output"] for r in rows]
    chats = [chat_text(r) for r in rows]
    messages = [[{"role": "user", "content": r["input"]}, {"role": "assistant", "content": r["output"]}] for r in rows]
    print(f"corpus: {len(texts):,} texts, {sum(map(len, texts)):,} characters; {len(chats):,} conversations; "
          f"{os.cpu_count()} CPU cores, HF threads: {os.environ.get('RAYON_NUM_THREADS', 'all')}")
    for vocab_size in (VOCAB_SIZE, 4096):
        ours_train, ours = median_time(lambda: Tokenizer.train(texts, vocab_size), REPEATS)
        theirs_train, theirs = median_time(lambda: hf_train(texts, vocab_size), REPEATS)
        ours_encode, ours_ids = median_time(lambda: encode_all(Tokenizer(ours.merges), messages), REPEATS)  # empty caches
        theirs_encode, theirs_ids = median_time(lambda: [e.ids for e in theirs.encode_batch(chats)], REPEATS)
        n_ours, n_theirs = sum(map(len, ours_ids)), sum(map(len, theirs_ids))
        print(f"\nvocabulary target {vocab_size}: ours {len(ours)} tokens, theirs {theirs.get_vocab_size()} tokens")
        print(f"  train : ours {ours_train:.3f} s, theirs {theirs_train:.3f} s -> ratio {ours_train / theirs_train:.2f}")
        print(f"  encode: ours {ours_encode:.3f} s, theirs {theirs_encode:.3f} s -> ratio {ours_encode / theirs_encode:.2f}"
              f"  ({n_ours:,} vs {n_theirs:,} tokens)")


if __name__ == "__main__":
    main()
