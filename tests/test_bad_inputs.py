"""Every bad input the reliability issue lists, run through the real entry points: exit 2, one stderr line naming the
key (and the file / line), and torch never imported (so no weights can have loaded: the fail-fast claim, checked
without a clock; how fast it fails is a benchmark's business, not a test's on a loaded machine)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engram.models.loading import find_smollm_gguf, smollm_cache_dir

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("_run_entry.py")


def run_entry(tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None):
    """(completed process, imported module names) of `python <script> args` (a 120 s timeout guards a hang)."""
    modules = tmp_path / "modules.txt"
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # one line unless a test asks
    full_env.update({"MODULES_OUT": str(modules), "HF_HUB_OFFLINE": "1", **(env or {})})
    proc = subprocess.run([sys.executable, str(RUNNER), script, *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=full_env)
    names = set(modules.read_text().split()) if modules.is_file() else set()
    return proc, names


def assert_one_line_exit_2(tmp_path: Path, script: str, args: list[str], needle: str,
                           env: dict[str, str] | None = None) -> str:
    proc, modules = run_entry(tmp_path, script, *args, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("config error: ") and needle in lines[0], lines[0]
    assert "torch" not in modules and not any(".modeling_" in m for m in modules), "weights could have loaded"
    return lines[0]


def engram_like_file(path: Path, metadata: dict[str, str] | None) -> Path:
    """A small safetensors file (written by hand: the format is 8 bytes of header length, a JSON header, data)."""
    header = {"layers.0.table.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 32)
    return path


ENGRAM_META = {"format": "engram-lab/1", "engram_config": "{}", "layers": "[0]", "pad_id": "0", "token_map": "none"}


# ---------------------------------------------------------------- train.py


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["optim.lr=-1"], "optim.lr=-1.0 must be a number > 0"),
        (["optim.betas=[0.9,1.0]"], "optim.betas="),
        (["optim.warmup_steps=-3"], "optim.warmup_steps=-3"),
        (["engram=deepseek", "trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
        (["engram.heads=600"], "engram.heads=600 must be <= engram.dim (576)"),
        (["trainer.max_epochs=-2"], "trainer.max_epochs=-2"),
        (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1"),
        (["trainer.devices=0"], "trainer.devices=0"),
        (["trainer.precision=8-bit"], "trainer.precision=8-bit"),
        (["trainer.accelerator=quantum"], "trainer.accelerator=quantum"),
        (["+trainer.max_epoch=3"], "trainer.max_epoch=3 is not a lightning.Trainer argument"),
        (["optim.lrr=1"], "optim.lrr"),  # a typo'd key: Hydra's own multi-line error before
        (["engram.prepopulate.steps=0"], "engram.prepopulate.steps=0 must be an integer >= 1"),
        (["engram.prepopulate.lr=-1"], "engram.prepopulate.lr=-1.0 must be a number > 0"),
        (["train.replay_ratio=-0.5"], "train.replay_ratio=-0.5 must be a number in [0, 16]"),
        (["engram.gate_l1=-1"], "engram.gate_l1=-1.0 must be a number >= 0"),
        (["engram.layers=[final,final]"], "engram.layers=[2, 2] names a layer twice"),
    ],
)
def test_train_bad_values(tmp_path, args, needle):
    assert_one_line_exit_2(tmp_path, "train.py", ["model=tiny", *args], needle)


def test_gpu_asked_on_a_cpu_only_torch(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert_one_line_exit_2(tmp_path, "train.py", ["model=tiny", "trainer=gpu"], "trainer.accelerator=gpu")


def test_hf_model_that_does_not_exist_offline(tmp_path):
    line = assert_one_line_exit_2(tmp_path, "train.py", ["model=hf", "model.name_or_path=does/not-exist"],
                                  "model.name_or_path=does/not-exist")
    assert "HF_HUB_OFFLINE" in line
    assert_one_line_exit_2(tmp_path, "train.py", ["variant=lora", "model=hf", f"model.name_or_path={tmp_path}"],
                           "without config.json")  # any variant, not only the memory ones


def test_layers_beyond_smollm_are_refused_fast(tmp_path):
    """The depth comes from the GGUF header / config.json, read without transformers or torch."""
    if find_smollm_gguf() is None and not (smollm_cache_dir() / "config.json").is_file():
        pytest.skip("SmolLM2 is neither cached nor installed")
    assert_one_line_exit_2(tmp_path, "train.py", ["engram.layers=[99]"],
                           "engram.layers=[99] is outside the model's 30 layers")


def test_corrupt_checkpoints(tmp_path):
    import torch

    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(os.urandom(4096))
    plain = tmp_path / "plain.ckpt"
    torch.save({"weight": torch.zeros(2)}, plain)  # a torch file, but not a Lightning checkpoint
    no_pickle = tmp_path / "other.zip"
    with zipfile.ZipFile(no_pickle, "w") as z:
        z.writestr("hello.txt", "hi")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(plain.read_bytes()[:200])
    not_lightning = "is not a Lightning checkpoint"
    for path, needle in ((noise, not_lightning), (plain, f"{not_lightning} (no state_dict"),
                         (no_pickle, f"{not_lightning} (a zip without data.pkl"), (truncated, not_lightning),
                         (tmp_path / "missing.ckpt", "does not exist")):
        assert_one_line_exit_2(tmp_path, "train.py", ["model=tiny", f"ckpt_path={path}"], f"ckpt_path={path} {needle}")


def test_data_file_not_utf8_names_file_and_line(tmp_path):
    data = tmp_path / "facts.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    data.write_bytes((good + "\n" + good + "\n").encode() + b"\xff\xfe caf\xe9\n")
    assert_one_line_exit_2(tmp_path, "train.py", ["model=tiny", "data=jsonl", f"data.path={data}"],
                           f"data.path={data}:3 is not UTF-8 (byte 0xff at column 1)")
    test = tmp_path / "test.jsonl"
    test.write_text(good + "\n[1, 2]\n")
    data.write_text(good + "\n" + good + "\n")
    assert_one_line_exit_2(tmp_path, "train.py", ["model=tiny", "data=jsonl", f"data.path={data}",
                                                  f"data.test_path={test}"], f"data.test_path={test}:2 expected")


def test_full_traceback_only_with_hydra_full_error(tmp_path):
    proc, *_ = run_entry(tmp_path, "train.py", "model=tiny", "optim.lr=-1", env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "config error: optim.lr=-1.0 must be a number > 0"


# ---------------------------------------------------------------- evaluate.py


def test_evaluate_corrupt_engram_files(tmp_path):
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(os.urandom(2048))
    other = engram_like_file(tmp_path / "other.safetensors", {"format": "pt"})
    good = engram_like_file(tmp_path / "good.safetensors", ENGRAM_META)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-8])
    cases = ((noise, "is not a safetensors file"), (other, "is a safetensors file but not an engram memory"),
             (truncated, "is truncated or corrupt"), (tmp_path / "missing.safetensors", "does not exist"),
             (tmp_path, "has no engram.safetensors"))
    for path, needle in cases:
        assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", f"engram_path={path}"],
                               f"engram_path={path} {needle}")


def test_evaluate_bad_run_dirs(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("variant:\n  name: engram\n")
    assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", f"run_dir={run}"],
                           f"run_dir={run} has no engram.safetensors")
    assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", f"run_dir={tmp_path}"], "is not a run dir")
    assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", f"multirun_dir={tmp_path / 'none'}"],
                           "multirun_dir=")
    assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", "variants=[baseline,adapter]"], "variants=")


@pytest.mark.parametrize(("args", "needle"), [
    (["train_variants=true", "multirun_dir=multirun/x"], "train_variants=true and multirun_dir=multirun/x ask for 2"),
    (["run_dir=a", "engram_path=b"], "run_dir=a and engram_path=b ask for 2 modes"),
    (["run_dirs=[a]", "run_dir=b"], "run_dirs=['a'] and run_dir=b ask for 2 modes"),
    ([], "nothing to evaluate; give one of train_variants=true"),
    (["train_variants=true", "reevaluate=true"], "reevaluate=true scores finished runs again"),
    (["-m", "train_variants=true", "engram_path=b", "seed=1,2"], "train_variants=true and engram_path=b"),
    # the old spelling: one line naming the new one, also beside another mode (experiments/exact500.yaml had both)
    (["four_way=true"], "four_way=true was renamed: use train_variants=true"),
    (["+four_way=true", "multirun_dir=multirun/x"], "four_way=true was renamed: use train_variants=true"),
])
def test_evaluate_modes_exactly_one(tmp_path, args, needle):
    assert_one_line_exit_2(tmp_path, "evaluate.py", ["model=tiny", *args, f"hydra.sweep.dir={tmp_path / 'm'}"], needle)
    assert not (tmp_path / "m").exists()  # a sweep is refused before Hydra makes its dirs
