"""The GPU check: zoo on an accelerator against transformers, in one short run.

CI has no GPU, so this is run by hand on a machine that has one (where MAX is
not installed, `tests/gpu_bundle.sh` packs it):

    python tests/gpu_check.py [--stories DIR] [--bench]

On the GPU, for random tiny GPT-2, Llama (grouped-query, biases, llama3 rope)
and Mixtral (4 experts, top-2, in the dense expert form used on accelerators)
checkpoints in float32, a batch of prompts of different lengths decodes with
the KV cache: every step's logits must match transformers' full recompute on
the CPU, and the greedy tokens must equal transformers' `generate`. GPT-2 also
runs in bfloat16 (the accelerator default), where agreement is reported.
`--stories DIR` (stories260K's `hf/` folder with `tok512.model` inside) has
the real model write its greedy story and compares it with transformers';
`--bench` runs `zoo bench gpt2 --random-weights` on the GPU. One line per
check; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import cached_decode, reference_greedy, reference_logits  # noqa: E402

DEVICE = "gpu"  # --device cpu runs the same checks here, to try the script
TOLERANCE = 1e-4
BF16_TOLERANCE = 0.5  # measured on the CPU for this config: 0.14
STEPS = 8
LENGTHS = [5, 11, 3]


def random_gpt2():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2_fixtures import TINY

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(initializer_range=0.2, **TINY)).eval()


def random_llama():
    from test_llama import CONFIGS, random_llama as make

    return make(seed=3, **CONFIGS["gqa"])


def random_mixtral():
    from test_mixtral import random_mixtral as make

    return make(seed=11)


def prompts_for(vocab_size: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [rng.integers(3, vocab_size, size=n).tolist() for n in LENGTHS]


def load_on_device(hf, folder: Path, dtype: str):
    """Saves `hf` like a hub checkpoint and compiles it for the device (no tokenizer needed)."""
    from zoo.core.loader import compile_prepared, prepare_model
    from zoo.plugins.manager import get_registry

    hf.save_pretrained(str(folder))
    prepared = prepare_model(str(folder), get_registry(), need_tokenizer=False)
    return compile_prepared(prepared, device=DEVICE, dtype=dtype, verbose=False)


def compare(hf, model, prompts: list[list[int]]) -> tuple[float, int, int]:
    """Worst logit difference over every row and step, and greedy tokens equal/total."""
    tokens, logits = cached_decode(model, prompts, STEPS)
    worst, equal = 0.0, 0
    for row, prompt in enumerate(prompts):
        sequence = list(prompt)
        for step in range(STEPS):
            worst = max(worst, float(np.abs(logits[step][row] - reference_logits(hf, sequence)).max()))
            sequence.append(int(tokens[step, row]))
        expected = reference_greedy(hf, prompt, STEPS)
        equal += sum(int(a == b) for a, b in zip(tokens[:, row].tolist(), expected))
    return worst, equal, STEPS * len(prompts)


def check_float32(name: str, make, workdir: Path) -> bool:
    hf = make()
    model = load_on_device(hf, workdir / name, "float32")
    worst, equal, total = compare(hf, model, prompts_for(hf.config.vocab_size))
    ok = worst <= TOLERANCE and equal == total
    report(ok, f"{name} float32: max |logit diff| {worst:.2e} (limit {TOLERANCE:g}), greedy tokens {equal}/{total} equal, compiled in {model.compile_seconds:.1f}s")
    return ok


def check_bfloat16(workdir: Path) -> bool:
    hf = random_gpt2()
    model = load_on_device(hf, workdir / "gpt2-bf16", "bfloat16")
    worst, equal, total = compare(hf, model, prompts_for(hf.config.vocab_size))
    ok = worst <= BF16_TOLERANCE
    report(ok, f"gpt2 bfloat16 vs float32 transformers: max |logit diff| {worst:.2e} (limit {BF16_TOLERANCE:g}), greedy tokens {equal}/{total} equal (reported), compiled in {model.compile_seconds:.1f}s")
    return ok


def check_stories(folder: Path) -> bool:
    from transformers import LlamaForCausalLM

    from zoo.core.runtime.generation import TextGenerator
    from zoo.core.loader import load_model
    from zoo.core.runtime.sampling import SamplingOptions
    from zoo.plugins.manager import get_registry

    model = load_model(
        str(folder), get_registry(), tokenizer=folder / "tok512.model", device=DEVICE, dtype="float32", verbose=False
    )
    generator = TextGenerator(model)
    options = SamplingOptions(greedy=True, max_new_tokens=40, ignore_eos=True)
    for _ in generator.stream(["Once upon a time"], options):
        pass
    done = generator.completions[0]
    expected = reference_greedy(LlamaForCausalLM.from_pretrained(str(folder)).eval(), done.prompt_ids, 40)
    ok = done.token_ids == expected
    report(ok, f"stories260K greedy on {DEVICE} equals transformers: {ok}; text: {done.text!r}")
    return ok


def check_bench() -> bool:
    from zoo.bench.run import bench_model, format_report

    result = bench_model("gpt2", random_weights=True, contexts=[16, 256, 768], new_tokens=32, device=DEVICE)
    print(format_report(result), flush=True)
    rows = result["contexts"]
    ok = all(row["zoo_decode_tok_s"] > 0 for row in rows)
    report(ok, "zoo bench gpt2 --random-weights --device gpu ran")
    return ok


def report(ok: bool, message: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=Path, help="stories260K hf/ folder with tok512.model in it")
    parser.add_argument("--bench", action="store_true", help="also run zoo bench on the GPU")
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device

    from max.driver import accelerator_count

    if DEVICE == "gpu" and accelerator_count() == 0:
        print("FAIL no GPU (accelerator) is visible to MAX", flush=True)
        return 1
    checks = [
        lambda d: check_float32("gpt2", random_gpt2, d),
        lambda d: check_float32("llama-gqa", random_llama, d),
        lambda d: check_float32("mixtral", random_mixtral, d),
        check_bfloat16,  # the accelerator default
    ]
    if args.stories:
        checks.append(lambda d: check_stories(args.stories))
    if args.bench:
        checks.append(lambda d: check_bench())
    failed = 0
    with tempfile.TemporaryDirectory() as workdir:
        for check in checks:
            try:
                failed += not check(Path(workdir))
            except Exception:  # a crash fails this check and the others still run
                failed += 1
                print("FAIL with an exception:", flush=True)
                traceback.print_exc()
    print(f"{len(checks) - failed}/{len(checks)} checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
