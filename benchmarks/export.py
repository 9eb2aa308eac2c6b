"""Chapter 10: tokens per second of ONNX Runtime against chapter 6's PyTorch loop, and the exports' sizes.

Both generate 64 new tokens greedily after the same 16-token prompt, with the KV cache (ONNX Runtime:
the cache as inputs and outputs of the graph, `OnnxChat.step`; PyTorch: `model_step`; both through chapter 6's
`decode`), on models
with the `cpu` and `t4` presets' shapes (random weights: speed does not depend on what the model knows;
no stop token, so every run makes all 64 tokens). Each model is exported to ONNX in a temporary folder.

Prints tokens per second, the ratio ONNX Runtime / PyTorch, the ONNX file's size, and the machine's
large-matmul GFLOP/s (machines differ; compare ratios).
"""
import tempfile
from pathlib import Path
from types import SimpleNamespace

import onnxruntime
import torch

from timing import median_time
from tinyllm.export import OnnxChat, to_onnx
from tinyllm.generate import Sampling, decode, model_step
from tinyllm.model import ModelConfig, TinyLM
from tinyllm.tokenizer import VOCAB_SIZE
from tinyllm.train import matmul_gflops

NEW_TOKENS, PROMPT_TOKENS, REPEATS = 64, 16, 5


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {matmul_gflops():.0f} GFLOP/s "
          f"(2048² float32 matmul), {NEW_TOKENS} new tokens")
    for preset in ("cpu", "t4"):
        torch.manual_seed(0)
        model = TinyLM(ModelConfig.preset(preset, VOCAB_SIZE)).eval()
        prompt = torch.randint(0, 256, (PROMPT_TOKENS,)).tolist()
        with tempfile.TemporaryDirectory() as folder:
            path = to_onnx(model, Path(folder) / "model.onnx")
            # what OnnxChat.step reads of a chat: the model's config and the graph's session
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            onnx_chat = SimpleNamespace(model=model, session=session)
            greedy, context = Sampling(temperature=0, max_new_tokens=NEW_TOKENS), model.config.context_length
            runs = {"pytorch": lambda: list(decode(model_step(model), [prompt], greedy, context)),
                    "onnxruntime": lambda: list(decode(OnnxChat.step(onnx_chat), [prompt], greedy, context))}
            speed = {name: NEW_TOKENS / median_time(fn, REPEATS, warmup=True)[0] for name, fn in runs.items()}
            size = path.stat().st_size / 1e6
        print(f"{preset:>3} preset: " + ", ".join(f"{name} {s:,.0f} tokens/s" for name, s in speed.items())
              + f" -> onnxruntime / pytorch = {speed['onnxruntime'] / speed['pytorch']:.2f}; model.onnx {size:.1f} MB")


if __name__ == "__main__":
    main()
