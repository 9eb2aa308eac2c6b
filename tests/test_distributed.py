"""Chapter 11: training on several processes computes what one process computes (hand-written).

The proofs launch real jobs, `torchrun --nproc_per_node=2 -m tinyllm train`, on two CPU processes
with gloo, on a small data set, and compare them with one process.

The tolerance. Two processes add the gradients of two half-batches where one process adds the
same terms in another order, so the weights differ in their last digits, and AdamW amplifies the
difference where a gradient nearly cancels. In float32 how much depends on the machine: after six
steps, 3e-6 on the 2-core CPU the chapter was first run on and 6e-5 on two others, where one process
on one thread was 3e-6 and a wrong trainer (the mean of the halves' mean losses) 6e-3. A bound drawn
from those numbers measures the machine. So the equivalence runs in float64 (the command line with float64 as
PyTorch's default float type): rounding shrinks with the precision, about 5e8 times, and a mistake
does not. Measured there: two processes 6e-15 from one, the wrong trainer 5e-3. The bound,
tinyllm.distributed.SAME_WEIGHTS = 1e-8, is a million times the first and half a million times
below the second; the test checks that the wrong trainer fails it.
"""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from command_line import run_tinyllm
from tinyllm.data import generate_conversations, save_conversations
from tinyllm.distributed import (FLOAT64_SCRIPT, SAME_WEIGHTS, DataParallelTrainer, default_dtype, launched_by_torchrun,
                                 weight_distance)
from tinyllm.model import IGNORE_INDEX, ModelConfig, TinyLM
from tinyllm.tokenizer import train_tokenizer
from tinyllm.runs import read_run_config, read_train_log
from tinyllm.train import Trainer, collate, encode_conversations, length_buckets, seeded, train_run

STEPS = 6
TOLERANCE = 1e-5   # of a single gradient, relative to its largest entry (no optimizer in between)

# Installed as sitecustomize in the launched processes: each rank notes every file it opens for
# writing and every directory it makes, renames or removes, so a test can see who wrote what.
# (safetensors writes tensors from Rust, unseen here; a save also makes a directory and writes JSON.)
AUDIT = '''
import os, sys
if "RANK" in os.environ and "TINYLLM_AUDIT" in os.environ:
    _log = os.open(os.path.join(os.environ["TINYLLM_AUDIT"], "rank" + os.environ["RANK"]),
                   os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    def _note(event, args):
        if event == "open":
            path, mode, flags = args
            if (mode and any(c in mode for c in "wax+")) or (not mode and flags & (os.O_WRONLY | os.O_RDWR)):
                os.write(_log, f"open {path}\\n".encode())
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree"):
            os.write(_log, f"{event} {args[0]}\\n".encode())
    sys.addaudithook(_note)
'''


def torchrun(*args: str, processes: int = 2, audit: Path | None = None, job: str = "", wait: bool = True,
             stderr=subprocess.PIPE, float64: Path | None = None):
    """`torchrun --standalone --nproc_per_node=processes -m tinyllm train *args`, one thread per process;
    with float64 (the path of a FLOAT64_SCRIPT file) in float64."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TINYLLM_TEST_JOB": job}
    if audit:
        audit.mkdir(parents=True, exist_ok=True)
        (audit / "sitecustomize.py").write_text(AUDIT)
        env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(audit), env.get("PYTHONPATH")])),
                "TINYLLM_AUDIT": str(audit)}
    program = [str(float64)] if float64 else ["-m", "tinyllm"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *program, "train", "--device", "cpu", *args]   # CPU processes, also where there is a GPU
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


class MeanOfMeans(Trainer):
    "A wrong two-process trainer, simulated in one process: it averages the halves' mean losses."

    def loss(self, inputs, targets):
        return sum(self.model(inputs[r::2], targets[r::2])[1] for r in range(2)) / 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "STEPS steps of the cpu preset in float64 on a small data set: two processes (torchrun, audited), one, a wrong one."
    root = tmp_path_factory.mktemp("processes")
    (root / "float64.py").write_text(FLOAT64_SCRIPT)
    data = save_conversations(generate_conversations(n=2_000, seed=0), root / "data")
    done = torchrun("--preset", "cpu", "--steps", str(STEPS), "--data", str(data), "--out", str(root / "two"),
                    audit=root / "audit", float64=root / "float64.py")
    with default_dtype(torch.float64):
        train_run(root / "one", "cpu", steps=STEPS, data_dir=data, device="cpu", progress=False)
        train_run(root / "mean-of-means", "cpu", steps=STEPS, data_dir=data, device="cpu", progress=False,
                  trainer_class=MeanOfMeans)
    return SimpleNamespace(root=root, data=data, one=root / "one", two=root / "two", audit=root / "audit",
                           stdout=done.stdout, wrong=root / "mean-of-means", float64=root / "float64.py")


@pytest.mark.slow
def test_two_processes_give_the_weights_of_one(runs):
    assert read_run_config(runs.two)["step"] == STEPS
    assert {w.dtype for w in load_file(runs.two / "model.safetensors").values()} == {torch.float64}
    assert weight_distance(runs.two, runs.one) <= SAME_WEIGHTS
    assert weight_distance(runs.wrong, runs.one) > 1e4 * SAME_WEIGHTS, "the test cannot tell a wrong trainer from a right one"
    one, two = read_train_log(runs.one), read_train_log(runs.two)
    assert [e["step"] for e in one] == [e["step"] for e in two]
    for a, b in zip(one, two):   # the logged loss is the whole batch's, summed over the processes, in float64;
        assert abs(a["loss"] - b["loss"]) < 1e-9   # the validation loss is scored on float32 logits (reply_loss)
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5
    assert f"trained {STEPS} steps on cpu on 2 processes" in runs.stdout and runs.stdout.count("trained") == 1


@pytest.mark.slow
def test_only_rank_0_writes_the_run(runs):
    notes = {rank: (runs.audit / f"rank{rank}").read_text() for rank in (0, 1)}   # each hook made its file
    mine = [line for line in notes[0].splitlines() if str(runs.two) in line]
    assert any(line.startswith("open") and line.endswith("config.json") for line in mine), "the audit sees writes"
    assert not [line for line in notes[1].splitlines() if str(runs.root) in line], "rank 1 wrote in the test's folder"
    assert sorted(p.name for p in runs.two.iterdir()) == sorted(p.name for p in runs.one.iterdir())
    assert not list(runs.root.glob("*.partial"))


@pytest.mark.slow
def test_a_mistake_under_torchrun_is_said_once(runs):
    job = torchrun("--preset", "cpu", "--data", str(runs.data), "--out", str(runs.two), wait=False)   # it exists
    _, stderr = job.communicate(timeout=300)
    assert job.returncode != 0
    assert stderr.count("tinyllm train: error:") == 1 and "already exists" in stderr


@pytest.mark.slow
def test_a_run_of_two_processes_chats_like_any_other(runs):
    done = run_tinyllm("chat", str(runs.two), "--prompt", "are you hungry?", "--seed", "0")
    assert done.returncode == 0 and done.stdout.strip(), done.stderr


@pytest.mark.slow
def test_resume_on_two_processes_and_on_one(runs, tmp_path):
    half = tmp_path / "half"
    torchrun("--preset", "cpu", "--steps", str(STEPS // 2), "--data", str(runs.data), "--out", str(half),
             float64=runs.float64)
    shutil.copytree(half, tmp_path / "half-on-one")
    torchrun("--preset", "cpu", "--resume", "--steps", str(STEPS), "--out", str(half), float64=runs.float64)
    # the same processes doing the same sums in the same order: equal to the last bit
    assert weight_distance(half, runs.two) == 0
    assert [e["step"] for e in read_train_log(half)] == [STEPS // 2, STEPS]
    with default_dtype(torch.float64):   # resumed alone
        train_run(tmp_path / "half-on-one", resume=True, steps=STEPS, device="cpu", progress=False)
    assert weight_distance(tmp_path / "half-on-one", runs.one) <= SAME_WEIGHTS


def rank_pids(job: str) -> dict[int, int]:
    "rank -> process id of the processes a test's torchrun started (Linux: read from /proc)."
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = dict(item.split("=", 1) for item in environ.read_bytes().decode().split("\0") if "=" in item)
        except (OSError, UnicodeDecodeError):
            continue
        if variables.get("TINYLLM_TEST_JOB") == job and "RANK" in variables:
            found[int(variables["RANK"])] = int(environ.parent.name)
    return found


@contextlib.contextmanager
def training_job(runs, tmp_path, *options):
    """A long two-process job, once both processes train: torchrun's process, the file its stderr goes
    to (read while it runs) and rank -> process id. Whatever is left of it is killed at the end."""
    job, log = uuid.uuid4().hex, tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = torchrun("--preset", "cpu", "--steps", "100000", "--data", str(runs.data), "--out",
                           str(tmp_path / "long"), *options, job=job, wait=False, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while "training:" not in log.read_text() or len(rank_pids(job)) < 2:   # rank 0's bar: past the set-up
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)
        yield process, log, rank_pids(job)
    finally:
        for pid in rank_pids(job).values():   # the workers run in sessions of their own: end them too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the processes in Linux's /proc")


@pytest.mark.slow
@LINUX_PROC
def test_a_killed_process_ends_the_job_with_a_report(runs, tmp_path):
    with training_job(runs, tmp_path) as (process, log, pids):
        killed = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        process.wait(timeout=60)
        took = time.monotonic() - killed
    assert took < 30, "the job took too long to end"
    assert process.returncode != 0
    report = log.read_text()   # (its "Root Cause" may name rank 0, when both exits are seen at once)
    assert "rank      : 1 (local_rank: 1)" in report and "Signal 9 (SIGKILL)" in report, report[-2000:]


@pytest.mark.slow
@LINUX_PROC
def test_a_stuck_process_times_out_with_one_line(runs, tmp_path):
    with training_job(runs, tmp_path, "--timeout", "5") as (process, log, pids):
        os.kill(pids[1], signal.SIGSTOP)   # alive, but answers nothing
        stopped, deadline = time.monotonic(), time.monotonic() + 60
        try:
            while "lost the others" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            waited = time.monotonic() - stopped
        finally:
            os.kill(pids[1], signal.SIGCONT)   # so that torchrun's SIGTERM ends it at once
        process.wait(timeout=60)
    line = next((line for line in log.read_text().splitlines() if "lost the others" in line), "")
    # gloo counts from when rank 0 began to wait, which can be up to a step before the SIGSTOP
    assert 4 <= waited < 30, f"rank 0 gave up after {waited:.0f} s"
    assert process.returncode != 0
    assert "tinyllm train: error: process 0 of 2 lost the others (Timed out" in line, log.read_text()[-3000:]
    assert "[rank0]: Traceback" not in log.read_text(), "rank 0 said it in one line, without a traceback"


@pytest.mark.slow
@LINUX_PROC
def test_ctrl_c_stops_every_process_after_the_same_step_and_rank_0_saves(runs, tmp_path):
    with training_job(runs, tmp_path) as (process, log, pids):
        process.send_signal(signal.SIGINT)   # Ctrl-C reaches torchrun, which passes it on
        process.wait(timeout=60)
    said = log.read_text()
    assert said.count("interrupted; the run was saved") == 1, said[-3000:]
    config = read_run_config(tmp_path / "long")
    assert 0 < config["step"] < 100_000 and not list(tmp_path.glob("*.partial"))


@pytest.fixture(scope="module")
def uneven_batch():
    "Inputs and targets of 31 real conversations: rows that split unevenly over 2 and over 3 processes."
    data = generate_conversations(n=1_000, seed=0)
    tok = train_tokenizer(data, vocab_size=400)
    examples = encode_conversations(data["train"].to_dict(), tok, context_length=128)
    batch = [examples[i] for i in length_buckets(examples, 31, seed=0)[0]]
    return collate(batch, tok.special_tokens["<|pad|>"])


@pytest.mark.parametrize("world", [2, 3])
def test_each_process_weights_its_loss_by_its_share_of_the_tokens(world, uneven_batch):
    "DataParallelTrainer.loss of every rank, averaged as DDP does, is the whole batch's gradient; a mean of means is not."
    inputs, targets = uneven_batch
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(vocab_size=448, n_layers=1, d_model=64, n_heads=2, d_ff=128, context_length=128, dropout=0.0))

    def gradient(loss):
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    whole = gradient(model(inputs, targets)[1])
    ranks = [SimpleNamespace(rank=rank, world=world, ddp=model, model=model, device=torch.device("cpu"), amp=False)
             for rank in range(world)]
    shared = sum(gradient(DataParallelTrainer.loss(rank, inputs, targets)) for rank in ranks) / world
    mean_of_means = sum(gradient(model(inputs[r::world], targets[r::world])[1]) for r in range(world)) / world
    scale = whole.abs().max()
    assert (shared - whole).abs().max() < TOLERANCE * scale
    assert (mean_of_means - whole).abs().max() > 10 * TOLERANCE * scale, "the test could not tell them apart"
    assert len({int((targets[r::world] != IGNORE_INDEX).sum()) for r in range(world)}) > 1, "the shares differ"


def test_with_dropout_each_process_draws_its_own_masks_the_same_after_a_resume():
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(vocab_size=64, n_layers=1, d_model=32, n_heads=2, d_ff=64, context_length=16, dropout=0.5))
    rows = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    inputs = rows.repeat_interleave(2, dim=0)   # rows a, a, b, b: both processes get a and b
    targets = inputs.roll(-1, dims=1)

    def loss(rank: int, step: int) -> float:
        me = DataParallelTrainer.__new__(DataParallelTrainer)   # one process's trainer, without a process group
        vars(me).update(rank=rank, world=2, ddp=model, model=model, device=torch.device("cpu"), amp=False,
                        step=step, train_config=SimpleNamespace(seed=0))
        torch.manual_seed(rank + 123)   # whatever state the generator is in before the step
        with seeded(me.dropout_seed(), me.device):   # the masks of the step, as Trainer.train_step draws them
            return me.loss(inputs, targets).item()

    assert loss(0, step=5) == loss(0, step=5), "a resumed step draws the masks it drew before"
    assert loss(0, step=5) != loss(1, step=5), "the processes draw different masks for the same rows"
    assert loss(0, step=5) != loss(0, step=6), "and new ones every step"


def test_without_torchrun_nothing_changes():
    assert not launched_by_torchrun()
    with pytest.raises(RuntimeError, match="torchrun"):
        DataParallelTrainer(None, None, None, None)
