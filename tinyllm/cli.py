"""The command line of the course (hand-written, not generated).

    python -m tinyllm data  --out DIR [--character finn|mochi|SPEC.yaml] [--n N] [--seed S]
    python -m tinyllm train --out RUN [--preset cpu|t4] [--character ...] [--steps N] [--seed S] [--resume]
                                [--data DIR] [--device D]
    python -m tinyllm chat  RUN|finn [--prompt TEXT ...] [--seed N] [--temperature T] [--top-k K] [--top-p P]
                                [--max-new-tokens N] [--single-turn] [--steer NAME=SCALE ...] [--steer-after K]
                                [--device D]
    python -m tinyllm eval  RUN|finn [--prompts N] [--seeds N] [--json] [--device D]
    python -m tinyllm export RUN|finn --to hf|onnx|web OUT [--force]
    torchrun [--standalone] --nproc_per_node=N -m tinyllm train ... [--timeout S]   (chapter 11: N processes)

Every command is a thin layer over a chapter's module. A user's mistake gets one
line on stderr and a non-zero exit status, never a traceback. Library modules are
imported inside the commands, so that `python -m tinyllm --help` answers at once; a
command's `--help` imports them to show each option's default from the chapter that
defines it.
"""
import argparse
import itertools
import math
import os
import sys
import time

from tinyllm import __version__


def conversation_count(text: str) -> int:
    "argparse type for --n: a whole number the generator accepts."
    from tinyllm.data import MIN_CONVERSATIONS

    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or n < MIN_CONVERSATIONS:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {MIN_CONVERSATIONS:,}, got {text!r}")
    return n


def positive(text: str) -> int:
    "argparse type for --steps."
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(text)


def speaks() -> bool:
    "False on the processes other than rank 0 under torchrun: they all run the same command, rank 0 speaks for all."
    return "TORCHELASTIC_RUN_ID" not in os.environ or os.environ.get("RANK") == "0"


def run_train(args: argparse.Namespace) -> int:
    from tinyllm.distributed import TIMEOUT_S, launched_by_torchrun, train_parallel
    from tinyllm.train import train_run

    options = dict(preset=args.preset, steps=args.steps, seed=args.seed, resume=args.resume, device=args.device,
                   data_dir=args.data, character=args.character)
    processes = ""
    start = time.perf_counter()
    try:
        if launched_by_torchrun():   # one of several processes (chapter 11): the others run this too
            processes = f" on {os.environ['WORLD_SIZE']} processes"
            trainer = train_parallel(args.out, timeout_s=args.timeout or TIMEOUT_S, **options)
        else:
            trainer = train_run(args.out, **options)
    except KeyboardInterrupt:
        if speaks():   # under torchrun, rank 0 saved the run and says so
            print(f"tinyllm train: interrupted; the run was saved in {args.out} — continue it with --resume",
                  file=sys.stderr)
        return 130
    if speaks():
        last = trainer.log[-1] if trainer.log else {}
        print(f"trained {trainer.step} steps on {trainer.device.type}{processes} in {time.perf_counter() - start:.0f} s "
              f"(data and tokenizer included): loss {last.get('loss', float('nan')):.3f}, "
              f"validation loss {last.get('val_loss', float('nan')):.3f}; wrote {args.out}")
    return 0


def sampling_setting(name: str, kind: type = float):
    "An argparse type for one of chapter 6's sampling settings: `Sampling` itself checks it, so the rules are its."
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {'whole ' if kind is int else ''}number, got {text!r}") \
                from None
        from tinyllm.generate import Sampling

        try:
            Sampling(**{name: value})
        except ValueError as error:   # "temperature must be 0 (greedy) or more, got -1.0"
            raise argparse.ArgumentTypeError(str(error)) from None
        return value
    return parse


def steer_setting(text: str) -> tuple[str, float]:
    "argparse type for --steer: a direction's name and its scale."
    name, equals, scale = text.partition("=")
    try:
        value = float(scale)
    except ValueError:
        value = math.nan
    if not equals or not name or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be NAME=SCALE, a topic of the run's character and a number "
                                         f"(food=4), got {text!r}")
    return name, value


def steer_chat(chat, run, steers: list[tuple[str, float]], after: int | None):
    "`chat` steered by the sum of each named direction of the run times its scale (chapter 7)."
    import torch

    from tinyllm.interpret import STEER_AFTER, STEERING_FILE, run_directions, steered

    after = STEER_AFTER if after is None else after
    shape = chat.model.config
    steered(chat, torch.zeros(shape.n_layers + 1, shape.d_model), 0.0, after)   # its check of the point, before the
                                                                                # directions, which can take a while
    if not (run / STEERING_FILE).is_file():
        print(f"tinyllm chat: computing {run.name}'s topic directions (once: they are kept in {STEERING_FILE})",
              file=sys.stderr)
    directions = run_directions(run)
    if unknown := [name for name, _ in steers if name not in directions]:
        raise ValueError(f"no direction {unknown[0]!r} in {run.name}: its directions are its character's topics "
                         f"({', '.join(sorted(directions))})")
    combined = sum(scale * directions[name] for name, scale in steers)
    return steered(chat, combined, 1.0, after)


def run_chat(args: argparse.Namespace) -> int:
    import warnings

    from tinyllm.generate import load

    if args.steer_after is not None and not args.steer:
        raise ValueError("--steer-after says where to add a direction: give one with --steer NAME=SCALE")
    model = load(args.run_dir, args.device)
    if args.steer:
        model = steer_chat(model, args.run_dir, args.steer, args.steer_after)
    given = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    settings = {key: value for key, value in given.items() if value is not None}   # else the chapter's defaults
    # a warning (an overlong prompt) is one line for the user, not a Python warning with a source line; for this
    # command only: catch_warnings puts Python's way back when it ends
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_: print(f"tinyllm chat: warning: {message}", file=sys.stderr)
        if args.prompt:   # one reply per line, each after the ones before (unless --single-turn); seeds as in chat_loop
            chat = model.conversation(**settings)
            for turn, text in enumerate(args.prompt):
                if not text.strip():
                    print("tinyllm chat: an empty --prompt gets an empty line", file=sys.stderr)
                if args.single_turn:
                    chat.reset()
                seed = None if args.seed is None else args.seed + turn
                print(" ".join(chat.say(text, seed).split()) if text.strip() else "")
            return 0
        memory = "answers each message on its own" if args.single_turn else "keeps the conversation; /reset starts over"
        print(f"chatting with {args.run_name} ({memory}); /quit or Ctrl-D leaves", file=sys.stderr)
        return chat_loop(model.conversation(**settings), not args.single_turn, args.seed, model.character.name)


def chat_loop(chat, multi_turn: bool, seed: int | None, speaker: str = "finn") -> int:
    "The interactive chat: read a line, stream the reply, until /quit or the end of input."
    for turn in itertools.count():
        try:
            text = input("you> ").strip()
        except EOFError:
            print(file=sys.stderr)
            return 0
        if text == "/quit":
            return 0
        if text == "/reset" or not multi_turn:
            chat.reset()
        if text == "/reset":
            print("(a new conversation)")
        elif not text:
            print(f"(say something to {speaker}, or /quit to leave)")
        else:
            print(f"{speaker}> ", end="", flush=True)
            for piece in chat.stream(text, None if seed is None else seed + turn):
                print(piece, end="", flush=True)
            print()


def run_eval(args: argparse.Namespace) -> int:
    import json

    from tinyllm.evaluate import evaluate_run, scoreboard

    given = dict(n_prompts=args.prompts, seeds=None if args.seeds is None else tuple(range(args.seeds)))
    results = evaluate_run(args.run_dir, device=args.device, **{k: v for k, v in given.items() if v is not None})
    print(json.dumps(results, indent=2) if args.json else scoreboard({args.run_name: results}))
    return 0


def run_data(args: argparse.Namespace) -> int:
    from tinyllm.character import load_character
    from tinyllm.data import generate_conversations, save_conversations

    n = {} if args.n is None else {"n": args.n}   # else chapter 1's size
    data = generate_conversations(**n, seed=args.seed, character=load_character(args.character))
    try:
        out = save_conversations(data, args.out)
    except OSError as error:
        raise OSError(f"cannot write {args.out}: {error.strerror or error}") from None
    sizes = ", ".join(f"{split} {len(ds):,}" for split, ds in data.items())
    print(f"wrote {sum(len(ds) for ds in data.values()):,} conversations to {out} ({sizes})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tinyllm.export import export_hf, export_onnx, export_web

    write = {"hf": export_hf, "onnx": export_onnx, "web": export_web}[args.to]
    start = time.perf_counter()
    out = write(args.run_dir, args.out, force=args.force)
    files = sorted(path for path in out.iterdir() if path.is_file())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s: {', '.join(path.name for path in files)} "
          f"({sum(path.stat().st_size for path in files) / 1e6:.1f} MB)")
    return 0


RUN_HELP = "a run directory written by `train`, or finn, finn-cpu or mochi: a reference run shipped with tinyllm"


def library_defaults() -> dict:
    "The defaults the help texts quote, from where the chapters define them."
    from dataclasses import asdict

    import inspect

    from tinyllm.data import N_CONVERSATIONS
    from tinyllm.distributed import TIMEOUT_S
    from tinyllm.evaluate import evaluate_run
    from tinyllm.generate import Sampling
    from tinyllm.interpret import STEER_AFTER

    scoring = inspect.signature(evaluate_run).parameters
    return {"n": N_CONVERSATIONS, "timeout": TIMEOUT_S, **asdict(Sampling()), "steer_after": STEER_AFTER,
            "prompts": scoring["n_prompts"].default, "seeds": len(scoring["seeds"].default)}


class LibraryDefaults(argparse.HelpFormatter):
    """Fills the {names} of a help text from `library_defaults()`, when the help is shown: only then is the
    library (and PyTorch) imported, so every other command starts at once, and no number is copied here."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action)
        return text.format(**library_defaults()) if text and "{" in text else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tinyllm", description="tinyllm: build, train and talk to Finn, a tiny language model.")
    parser.add_argument("--version", action="version", version=f"tinyllm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, formatter_class=LibraryDefaults, **kwargs)

    character_help = "a shipped character (finn, mochi) or a YAML spec file (default finn; see chapter 9)"
    data = command("data", help="generate a character's conversations and write them to a directory",
                   description="Generate the conversation data set (chapter 1) and write it to "
                               "DIR: Hugging Face save_to_disk format plus one .jsonl per split.")
    data.add_argument("--out", required=True, metavar="DIR", help="directory to write (created if missing)")
    data.add_argument("--n", type=conversation_count, help="number of conversations (default {n})")
    data.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    data.add_argument("--character", default="finn", metavar="NAME|SPEC", help=character_help)
    data.set_defaults(run=run_data)

    train = command("train", help="train a character's model with a preset (chapter 5)",
                    description="Build the data and tokenizer (or read --data), train a model "
                                "with a preset, and write the run directory RUN. Started by "
                                "`torchrun --nproc_per_node=N -m tinyllm train ...`, N processes "
                                "train the run together (chapter 11).")
    train.add_argument("--preset", choices=["cpu", "t4"],
                       help="model shape and recipe (default: t4 when training on a CUDA device, else cpu)")
    train.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    train.add_argument("--steps", type=positive, help="optimizer steps (default: the preset's)")
    train.add_argument("--seed", type=int, default=0, help="random seed for data and training (default %(default)s)")
    train.add_argument("--resume", action="store_true", help="continue the run in RUN")
    train.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    train.add_argument("--data", metavar="DIR", help="train on this data set instead of generating one")
    train.add_argument("--character", default="finn", metavar="NAME|SPEC", help=character_help)
    train.add_argument("--timeout", type=positive, metavar="S",
                       help="under torchrun: seconds a process waits for the others before it stops "
                            "(default {timeout})")
    train.set_defaults(run=run_train)

    chat = command("chat", help="talk to a trained model (chapter 6)",
                   description="Chat with the model in the run directory RUN: interactively, "
                               "streaming its words, or one reply per --prompt.")
    chat.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    chat.add_argument("--prompt", action="append", metavar="TEXT",
                      help="print the reply to TEXT and exit (repeat for several, one reply per line)")
    chat.add_argument("--seed", type=int, help="random seed: the same seed gives the same replies")
    chat.add_argument("--temperature", type=sampling_setting("temperature"),
                      help="0 is greedy (default: chapter 6's, {temperature})")
    chat.add_argument("--top-k", type=sampling_setting("top_k", int), help="sample from the K likeliest tokens (default {top_k})")
    chat.add_argument("--top-p", type=sampling_setting("top_p"),
                      help="nucleus sampling: the probability mass kept (default {top_p})")
    chat.add_argument("--max-new-tokens", type=sampling_setting("max_new_tokens", int),
                      help="the longest reply, in tokens (default {max_new_tokens})")
    memory = chat.add_mutually_exclusive_group()
    memory.add_argument("--single-turn", action="store_true",
                        help="answer each message on its own (by default the conversation so far is the context)")
    memory.add_argument("--multi-turn", action="store_true", help=argparse.SUPPRESS)   # now the default; kept so old commands run
    chat.add_argument("--steer", type=steer_setting, action="append", metavar="NAME=SCALE",
                      help="add SCALE times the direction of a topic (food=4) to the residual stream as it answers; "
                           "repeat to add several (chapter 7)")
    chat.add_argument("--steer-after", type=int, metavar="K",
                      help="add it after K blocks, 0 for the embeddings (default {steer_after})")
    chat.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    chat.set_defaults(run=run_chat)

    evaluation = command("eval", help="score a trained model (chapter 8)",
                         description="Score the model in RUN with chapter 8's harness on its test "
                                     "split: held-out loss, format, persona, novelty, robustness.")
    evaluation.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    evaluation.add_argument("--prompts", type=positive,
                            help="unseen-wording test questions to answer (default {prompts})")
    evaluation.add_argument("--seeds", type=positive, help="sampling seeds to average over (default {seeds})")
    evaluation.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    evaluation.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    evaluation.set_defaults(run=run_eval)

    export = command("export", help="hand a trained model to other software (chapter 10)",
                     description="Write the model in RUN to the folder OUT: a Hugging Face transformers "
                                 "model (hf), an ONNX graph with a KV cache (onnx), or a chat page that "
                                 "runs in a browser with no server (web).")
    export.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    export.add_argument("--to", required=True, choices=["hf", "onnx", "web"], help="the form to write")
    export.add_argument("out", metavar="OUT", help="the folder to write (it must not exist, unless --force)")
    export.add_argument("--force", action="store_true", help="replace OUT if it exists")
    export.set_defaults(run=run_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from tinyllm.runs import pick_device, run_path

        pick_device(getattr(args, "device", None))   # a device that is not there: one line, before any work
        if hasattr(args, "run_dir"):   # a directory, or a shipped reference run named as typed
            args.run_name, args.run_dir = str(args.run_dir), run_path(args.run_dir)
        return args.run(args)
    except (OSError, ValueError, ModuleNotFoundError) as error:  # a user's mistake or a missing extra: one line
        # under torchrun every process runs the same command and makes the same mistake: rank 0 says it
        if speaks() or isinstance(error, ConnectionError):
            print(f"tinyllm {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tinyllm {args.command}: interrupted", file=sys.stderr)
        return 130
