"""The same injection on the real SmolLM2-135M-Instruct (slow: run with `pytest -m slow`)."""

import pytest
import torch

from engram import add_engram, engram_parameters, load_engram, remove_engram, save_engram
from engram.evaluation.gate_stats import collect_gate_stats
from engram.models.inject import engram_memories

pytestmark = pytest.mark.slow

CASES = {  # engram/conf/engram-like settings, smaller tables to keep the test quick
    # gate_bias -5 rather than deepseek.yaml's 0: a half-open fresh memory moves SmolLM2's logits by ~0.2 and can
    # flip a near-tied greedy token, which is not what this test is about
    "layers1_deepseek": dict(layers=[1], hash="deepseek", gate="context", gate_bias=-5.0, dim=256, heads=4,
                             max_ngram=3, table_size=5000),
    "all_poc": dict(layers="all", hash="poc", gate="mlp", gate_bias=-5.0, dim=576, heads=4, max_ngram=2,
                    table_size=1000, sparse=False, compress_vocab=False),
    "all_span": dict(layers="all", hash="span", gate="context", gate_bias=-5.0, dim=64, heads=2, table_size=1000),
}


@pytest.fixture(scope="module")
def smollm():
    """The model, a left-padded batch of 3 chat prompts of different lengths, its logits and greedy tokens."""
    from engram.models import load_model

    model, tok = load_model("smollm")
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
             for q in ["What is the capital of France?", "Name a primary colour, please.", "2+2?"]]
    batch = tok(texts, return_tensors="pt", padding=True)
    gen = dict(max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        logits = model(**batch).logits
    return model, tok, batch, gen, logits, model.generate(**batch, **gen)


@pytest.mark.parametrize("case", sorted(CASES))
def test_inject_smollm(smollm, case, tmp_path):
    base_model, tok, batch, gen, base_logits, base_tokens = smollm
    model = add_engram(base_model, CASES[case], tokenizer=tok)
    try:
        n_layers = len(engram_memories(model))
        assert n_layers == (1 if case.startswith("layers1") else model.config.num_hidden_layers)
        with torch.no_grad(), model.tracing() as traces:
            logits = model(**batch).logits
        # a fresh memory with a closed gate barely moves the model and the greedy answers are unchanged
        mask = batch["attention_mask"].bool()
        assert (logits - base_logits)[mask].abs().max() < 0.1
        assert torch.equal(model.generate(**batch, **gen), base_tokens)
        stats = collect_gate_stats(model, traces)
        assert len(stats) == 5 * n_layers

        # open the memory: outputs change, and cached generation still equals uncached
        with torch.no_grad():
            for p in engram_parameters(model):
                p.add_(torch.randn_like(p) * 0.3)
        cached = model.generate(**batch, **gen, use_cache=True)
        uncached = model.generate(**batch, **gen, use_cache=False)
        assert torch.equal(cached, uncached)

        # save -> fresh injection -> load gives bit-identical logits
        with torch.no_grad():
            want = model(**batch).logits
        path = save_engram(model, tmp_path)
        remove_engram(model)
        model = add_engram(base_model, CASES[case], tokenizer=tok)
        load_engram(model, path)
        with torch.no_grad():
            assert torch.equal(model(**batch).logits, want)
    finally:
        remove_engram(model)  # a second remove is a no-op
    with torch.no_grad():
        assert torch.equal(base_model(**batch).logits, base_logits)  # removed cleanly


@pytest.mark.parametrize("case", ["recall", "deepseek_zeros", "poc_zeros"])
def test_a_fresh_memory_is_an_exact_no_op_on_smollm(smollm, case):
    """engram=recall (and any gate with engram.init=zeros): every logit bit-identical to the base model."""
    from omegaconf import OmegaConf

    from engram import EngramModel
    from engram.config import EngramConfig

    model, tok, batch, _, logits, _ = smollm
    over = {
        "recall": dict(hash="answer", address="fingerprint", gate="direct", layers=["final"], dim=576,
                       table_size=50000, init="prepopulate"),
        "deepseek_zeros": dict(init="zeros", layers=[1, 15]),
        "poc_zeros": dict(init="zeros", hash="poc", gate="mlp", layers="all", dim=576, table_size=1000,
                          compress_vocab=False),
    }[case]
    wrapped = EngramModel(model, OmegaConf.merge(OmegaConf.structured(EngramConfig), over), tok)
    try:
        with torch.no_grad():
            assert torch.equal(wrapped(**batch).logits, logits)
    finally:
        wrapped.remove()


def test_written_facts_are_recalled_and_other_prompts_untouched_on_smollm(smollm):
    from omegaconf import OmegaConf

    from engram import EngramModel
    from engram.config import EngramConfig
    from engram.data.families.exact_match import build_exact_match
    from engram.training.writing import recall_of, write_facts

    model, tok, batch, gen, logits, greedy = smollm
    cfg = OmegaConf.merge(OmegaConf.structured(EngramConfig),
                          dict(hash="answer", address="fingerprint", gate="direct", layers=["final"], dim=576,
                               table_size=50000, init="prepopulate"))
    facts = build_exact_match(OmegaConf.create(dict(family="exact_match", num_train=40, num_eval=10,
                                                    categories=None, seed=7, prompt_format="chat",
                                                    eval_seen_fraction=0.5)))["train"]
    facts = [f for f in facts if f["prompt"] != "What is the capital of France?"]  # one of the batch's prompts
    wrapped = EngramModel(model, cfg, tok)
    try:
        assert write_facts(wrapped, tok, facts, progress=False).recall >= 0.95
        assert recall_of(wrapped, tok, facts, progress=False) >= 0.95
        with torch.no_grad():
            assert torch.equal(wrapped(**batch).logits, logits)
            assert torch.equal(wrapped.generate(**batch, **gen), greedy)
            with wrapped.memories_off():
                assert recall_of(wrapped, tok, facts, progress=False) <= 0.05
    finally:
        wrapped.remove()
