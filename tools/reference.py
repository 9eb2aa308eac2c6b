"""Regenerate the reference runs shipped with the library (`make reference`). Hand-written.

Each reference run is a character trained with a preset and seed 0, exactly as the chapters train it:
`finn`, Finn with the `t4` preset (chapter 5 on a GPU: the 8M model the book shows), `finn-cpu`, Finn
with the `cpu` preset (chapter 5 on a CPU), and `mochi`, Mochi with the `cpu` preset (chapter 9). This
script trains them, or packs finished runs given with --from, and writes what loading a run needs into tinyllm/reference/<name>/: the weights in
half precision (3.5 MB instead of 7 MB for a cpu-preset run, 16 MB for the t4 one: the repository keeps
every version forever, and fp16 changes Finn's scores by less than their spread over seeds),
config.json, tokenizer.json, train_log.jsonl, character.yaml, steering.safetensors (chapter 7's topic
directions, from the shipped weights), and reference.json, a record of what the run was trained on, where,
and for how long. tests/test_reference.py fails when that record no longer
matches what the chapters produce.

    python tools/reference.py                        # retrain the cpu-preset runs (about 5 minutes on two cores)
    python tools/reference.py finn                   # the 8M Finn: minutes on a GPU, about 2 hours on two cores
    python tools/reference.py finn-cpu --from runs/cpu --trained-on "my laptop"   # pack chapter 5's finished run
    python tools/reference.py finn --from runs/t4 --trained-on "a Colab T4"
"""
import argparse
import hashlib
import json
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import tinyllm
from tinyllm.character import load_character
from tinyllm.data import atomic_folder
from tinyllm.interpret import run_directions
from tinyllm.model import ModelConfig
from tinyllm.runs import (REFERENCE_NAMES, REFERENCE_RUNS, data_fingerprint, is_finished, load_data, pick_device,
                          read_run_config, read_train_log, run_character)
from tinyllm.train import TRAIN_PRESETS, matmul_gflops, train_run

# a reference run's name: (the character it plays, the preset it was trained with)
REFERENCES = {name: key for key, name in REFERENCE_NAMES.items()}
RETRAINED_BY_DEFAULT = [name for name, (_, preset) in REFERENCES.items() if preset == "cpu"]
COPIED = ("config.json", "tokenizer.json", "train_log.jsonl", "character.yaml")


def training_seconds(log: list[dict]) -> float:
    "The time a run spent in training steps, from its log (each entry times the steps since the one before)."
    seconds, previous = 0.0, 0
    for entry in log:
        seconds += entry["seconds_per_step"] * (entry["step"] - previous)
        previous = entry["step"]
    return seconds


def this_machine(device: str) -> str:
    "Where a run trains when this script trains it: the device, and the yardstick for comparing machines."
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA)"
    if torch.device(device).type == "mps":
        return f"Apple GPU (MPS), {platform.machine()}"
    processor = platform.processor() or platform.machine()
    return (f"CPU ({processor}, {torch.get_num_threads()} threads, "
            f"large matmul {matmul_gflops(device):.0f} GFLOP/s)")


def pack(run_dir: Path, name: str, trained_on: str) -> dict:
    "Write the reference version of a finished run of reference `name`'s character and preset; return its record."
    character_name, preset = REFERENCES[name]
    config, character, out = read_run_config(run_dir), load_character(character_name), REFERENCE_RUNS / name
    expected = asdict(TRAIN_PRESETS[preset]) | {"seed": 0}
    shape = ModelConfig.preset(preset, config["model"]["vocab_size"]).to_dict()
    if (not is_finished(run_dir) or config["train"] != expected or config["model"] != shape
            or run_character(run_dir) != character):
        raise ValueError(f"{run_dir} is not a finished run of the {preset} preset with seed 0 as {character_name}")
    source = {"n": expected["n_conversations"], "seed": 0}
    fingerprint = data_fingerprint(load_data(source, character))
    if config["data"] != source and data_fingerprint(load_data(config["data"], character)) != fingerprint:
        raise ValueError(f"{run_dir} was not trained on {character_name}'s conversations ({source['n']:,}, seed 0)")
    record = {"name": name, "character": character_name, "preset": preset, "seed": 0, "steps": config["step"],
              "weights": "float16", "data_fingerprint": fingerprint,
              "tokenizer_sha1": hashlib.sha1((run_dir / "tokenizer.json").read_bytes()).hexdigest(),
              "trained_on": trained_on, "training_minutes": round(training_seconds(read_train_log(run_dir)) / 60, 1),
              "tinyllm_version": tinyllm.__version__, "torch_version": torch.__version__.split("+")[0]}
    with atomic_folder(out) as staging:
        weights = load_file(str(run_dir / "model.safetensors"))
        save_file({key: tensor.half() for key, tensor in weights.items()}, str(staging / "model.safetensors"))
        for file in COPIED:
            shutil.copy(run_dir / file, staging / file)
        saved = json.loads((staging / "config.json").read_text())   # a run on a saved copy of the data names
        saved["data"] = source                                         # its folder; the generator makes it again
        (staging / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
        (staging / "reference.json").write_text(json.dumps(record, indent=2) + "\n")
    run_directions(out)   # chapter 7's topic directions, from the shipped weights: computed once and kept there
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which reference runs: {', '.join(REFERENCES)} (default: {', '.join(RETRAINED_BY_DEFAULT)})")
    parser.add_argument("--from", dest="run", type=Path, help="a finished run to pack instead of training (one NAME)")
    parser.add_argument("--trained-on", help="with --from: where that run trained (a GPU's name, or a CPU and "
                                             "its large-matmul GFLOP/s), for the record")
    args = parser.parse_args()
    args.names = args.names or RETRAINED_BY_DEFAULT
    if unknown := set(args.names) - set(REFERENCES):
        parser.error(f"no reference run {sorted(unknown)[0]!r}: choose from {', '.join(REFERENCES)}")
    if args.run and (len(args.names) != 1 or not args.trained_on):
        parser.error("--from packs one run: name exactly one reference, and say where it trained with --trained-on")
    for name in args.names:
        character, preset = REFERENCES[name]
        with tempfile.TemporaryDirectory() as tmp:
            run, trained_on = args.run, args.trained_on
            if run is None:   # as chapter 5 trains it: the cpu preset on the CPU, the t4 one on the best device
                device = "cpu" if preset == "cpu" else str(pick_device())
                run, trained_on = Path(tmp) / name, this_machine(device)
                train_run(run, preset=preset, seed=0, device=device, character=character)
            record = pack(run, name, trained_on)
        size = (REFERENCE_RUNS / name / "model.safetensors").stat().st_size
        print(f"wrote tinyllm/reference/{name} ({size / 1e6:.1f} MB of weights): {json.dumps(record)}", file=sys.stderr)


if __name__ == "__main__":
    main()
