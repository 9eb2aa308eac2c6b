"""Regenerate the reference runs shipped with the library (`make reference`). Hand-written.

Trains Finn (chapter 5) and Mochi (chapter 9) with the `cpu` preset and seed 0, on the CPU,
exactly as the chapters do, or packs finished runs given with --from, and writes what loading
a run needs into tinyllm/reference/<name>/: the weights in half precision (3.5 MB instead of
7 MB each: the repository keeps every version forever, and fp16 changes Finn's scores by less
than their spread over seeds), config.json, tokenizer.json, train_log.jsonl, character.yaml, and
reference.json, a record of what the run was trained on. tests/test_reference.py fails when that
record no longer matches what the chapters produce.

    python tools/reference.py                      # retrain both (about 3 minutes on two cores)
    python tools/reference.py finn --from runs/cpu # pack chapter 5's finished run as Finn's reference
"""
import argparse
import hashlib
import json
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
from tinyllm.runs import REFERENCE_RUNS, data_fingerprint, is_finished, load_data, read_run_config, run_character
from tinyllm.train import TRAIN_PRESETS, train_run

NAMES = ("finn", "mochi")   # a shipped character's name is its reference run's name
COPIED = ("config.json", "tokenizer.json", "train_log.jsonl", "character.yaml")


def pack(run_dir: Path, name: str) -> dict:
    "Write the reference version of a finished cpu-preset run of character `name`; return its record."
    config, character, out = read_run_config(run_dir), load_character(name), REFERENCE_RUNS / name
    expected = asdict(TRAIN_PRESETS["cpu"]) | {"seed": 0}
    if not is_finished(run_dir) or config["train"] != expected or run_character(run_dir) != character:
        raise ValueError(f"{run_dir} is not a finished run of the cpu preset with seed 0 as {name}")
    source = {"n": expected["n_conversations"], "seed": 0}
    fingerprint = data_fingerprint(load_data(source, character))
    if config["data"] != source and data_fingerprint(load_data(config["data"], character)) != fingerprint:
        raise ValueError(f"{run_dir} was not trained on {name}'s conversations ({source['n']:,}, seed 0)")
    record = {"name": name, "preset": "cpu", "seed": 0, "steps": config["step"], "weights": "float16",
              "data_fingerprint": fingerprint,
              "tokenizer_sha1": hashlib.sha1((run_dir / "tokenizer.json").read_bytes()).hexdigest(),
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
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"which reference runs: {', '.join(NAMES)} (default: all)")
    parser.add_argument("--from", dest="run", type=Path, help="a finished run to pack instead of training (one NAME)")
    args = parser.parse_args()
    args.names = args.names or list(NAMES)
    if unknown := set(args.names) - set(NAMES):
        parser.error(f"no reference run {sorted(unknown)[0]!r}: choose from {', '.join(NAMES)}")
    if args.run and len(args.names) != 1:
        parser.error("--from packs one run: name exactly one reference")
    for name in args.names:
        with tempfile.TemporaryDirectory() as tmp:
            run = args.run
            if run is None:   # on the CPU, as the chapters train it on a machine without a GPU
                run = Path(tmp) / name
                train_run(run, preset="cpu", seed=0, device="cpu", character=name)
            record = pack(run, name)
        size = (REFERENCE_RUNS / name / "model.safetensors").stat().st_size
        print(f"wrote tinyllm/reference/{name} ({size / 1e6:.1f} MB of weights): {json.dumps(record)}", file=sys.stderr)


if __name__ == "__main__":
    main()
