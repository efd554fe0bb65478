"""Language modelling on the tiny model: perplexity against a hand computation, the two controls' lookups, a fresh
memory that changes nothing, an end-to-end data=text run with its metric names, and the report's slots fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from engram import add_engram
from engram.data.text_blocks import collate_blocks
from engram.evaluation.gate_classes import BigramCounts, GateByClass, bucket_of, classify, token_texts
from engram.evaluation.perplexity import score_blocks
from engram.models import load_model
from engram.models.inject import engram_memories
from engram.tracking.lm_report import fit_log_slope, lm_section
from engram.tracking.report import markdown_table
from tests._training_utils import tiny_cfg
from tests.test_lm_data import write_corpus

TEXT = "The quick brown fox jumps over the lazy dog. The quick brown fox naps."


def deepseek(**kw):
    return {"table_size": 97, "heads": 2, "dim": 16, "max_ngram": 3, "layers": [1], "hash": "deepseek",
            "gate": "context", "seed": 0, **kw}


def test_perplexity_equals_a_hand_computed_value():
    model, tok = load_model("tiny")
    ids = tok(TEXT, add_special_tokens=False)["input_ids"][:12]
    blocks = [ids[:6], ids[6:12]]
    batch = collate_blocks([{"input_ids": torch.tensor(b), "num_bytes": torch.tensor(len(tok.decode(b[1:]).encode()))}
                            for b in blocks])
    score = score_blocks(model, [batch])
    # by hand: each position's log-softmax, one token at a time, in float64
    nll, n_bytes = 0.0, 0
    with torch.no_grad():
        for b in blocks:
            logits = model(torch.tensor([b])).logits[0].double()
            for t in range(len(b) - 1):
                row = logits[t]
                nll += float(torch.logsumexp(row, 0) - row[b[t + 1]])
            n_bytes += len(tok.decode(b[1:]).encode("utf-8"))
    assert score.tokens == 10 and score.num_bytes == n_bytes
    assert score.loss == pytest.approx(nll / 10, rel=1e-5)
    assert score.ppl == pytest.approx(math.exp(nll / 10), rel=1e-5)
    assert score.bpb == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-5)


def lookups(model, ids):
    memory = engram_memories(model)[1]
    found = memory.lookup(ids, torch.ones_like(ids), torch.zeros(len(ids), dtype=torch.long), ids.shape[1])
    return found.slots


def test_capacity_one_control_reads_one_row_per_head():
    model, tok = load_model("tiny")
    model = add_engram(model, deepseek(table_size=1), tokenizer=tok)
    memory = engram_memories(model)[1]
    assert memory.table.weight.shape[0] == 2 * 2  # two orders x two heads, one row each
    ids = torch.randint(4, 2000, (3, 20), generator=torch.Generator().manual_seed(0))
    assert (lookups(model, ids) == 0).all()
    model, tok = load_model("tiny")
    normal = add_engram(model, deepseek(), tokenizer=tok)
    assert lookups(normal, ids).unique().numel() > 10  # without the control the n-grams spread over the rows


def test_shuffled_keys_ignore_the_tokens_and_follow_the_position():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(4, 2000, (1, 24), generator=g), torch.randint(4, 2000, (1, 24), generator=g)
    model, tok = load_model("tiny")
    shuffled = add_engram(model, deepseek(deepseek={"key_shuffle": True}), tokenizer=tok)
    assert torch.equal(lookups(shuffled, a), lookups(shuffled, b))  # other text, same rows
    assert lookups(shuffled, a)[0, :, 0].unique().numel() > 10  # but not one row for all positions
    # the last position looked up alone (as cached decoding does) reads what the whole sequence gave it
    memory = engram_memories(shuffled)[1]
    last = memory.lookup(a, torch.ones_like(a), torch.zeros(1, dtype=torch.long), 1).slots
    assert torch.equal(last[0, -1], lookups(shuffled, a)[0, -1])
    model, tok = load_model("tiny")
    plain = add_engram(model, deepseek(), tokenizer=tok)
    assert not torch.equal(lookups(plain, a), lookups(plain, b))


def test_fresh_zero_initialised_memory_changes_nothing():
    model, tok = load_model("tiny")
    ids = torch.randint(4, 2000, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(ids).logits
        fresh = add_engram(model, deepseek(init="zeros"), tokenizer=tok)(ids).logits
    assert torch.equal(fresh, base)


def test_text_run_writes_the_language_model_metrics(tmp_path):
    from engram.training.pipeline import train

    corpus = write_corpus(tmp_path / "corpus", 40, words=120)
    cfg = tiny_cfg(tmp_path / "run", "data=text", f"data.path={corpus}", "data.block_size=32",
                   "data.num_tokens=256", "data.eval_tokens=128", "engram.init=zeros")
    metrics, objects = train(cfg)
    for key in ("lm/loss", "lm/ppl", "lm/bpb", "lm/ppl_base", "lm/loss_base", "lm/bpb_base", "lm/ppl_knockout",
                "lm/tokens_per_s"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["lm/ppl"] == pytest.approx(math.exp(metrics["lm/loss"]))
    # the gate by token class: per training step (logged) and on the test text (eval.json)
    assert any(k.startswith("train/gate_class/layer1/") for k in metrics)
    assert "gate_class/layer1/inside_word" in metrics and "gate_class/share/punctuation" in metrics
    assert (tmp_path / "run" / "gate_tokens.png").is_file()
    # the memory off is the frozen base (engram variant): the same blocks, the same score
    assert metrics["lm/ppl_knockout"] == pytest.approx(metrics["lm/ppl_base"], rel=1e-6)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["metrics"]["lm/bpb"] == pytest.approx(metrics["lm/bpb"])
    assert saved["info"]["corpus"]["documents"]["train"] > 0 and saved["info"]["num_train"] == 256

    # evaluate.py's path: the saved memory scored again, on another corpus given through data.path
    from engram.evaluation.evaluate import evaluate_model

    other = tmp_path / "other"
    other.mkdir()
    for i in range(30):
        (other / f"note_{i}.md").write_text(f"# Note {i}\n" + "Zeta eta theta, iota kappa. " * 20)
    cfg.data.path = str(other)
    evaluate_model(cfg, tmp_path / "again", run_dir=tmp_path / "run", variant="engram")
    again = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert again["info"]["evaluated_from"] == str(tmp_path / "run")
    assert again["info"]["corpus"]["source"] == str(other)
    assert again["metrics"]["lm/ppl_base"] != pytest.approx(metrics["lm/ppl_base"])
    assert again["metrics"]["lm/ppl_knockout"] == pytest.approx(again["metrics"]["lm/ppl_base"], rel=1e-6)


def test_slots_fit_recovers_a_log_linear_slope_and_the_report_draws_it(tmp_path):
    slots = np.array([1e3, 1e4, 1e5, 1e6])
    loss = 3.0 - 0.05 * np.log10(slots)
    slope, intercept = fit_log_slope(slots, loss)
    assert slope == pytest.approx(-0.05) and intercept == pytest.approx(3.0)
    df = pd.DataFrame({"label": [f"table_size={int(s)}" for s in slots], "variant": "engram", "data": "text",
                       "table_size": slots.astype(int), "lm_loss": loss, "lm_ppl": np.exp(loss),
                       "lm_loss_base": 3.2, "status": "ok"})
    md, plots = lm_section(df, tmp_path, markdown_table)
    assert "loss_vs_slots.png" in plots and (tmp_path / "loss_vs_slots.png").is_file()
    assert any("-0.0500 nats" in line for line in md)
    drawn = plots["loss_vs_slots.png"]["memory (test loss)"]
    assert [p[1] for p in drawn] == pytest.approx(list(loss))


def test_the_slots_fit_joins_only_runs_that_differ_in_slots_and_seed(tmp_path):
    """A control arm (one row per head) or another data scale in the same report is a line of its own, never a
    point of the memory's slots law; seeds of one setting average into one point."""
    rows = []
    for tokens, offset in ((24576, 0.2), (98304, 0.0)):
        for slots in (1e3, 1e4, 1e5):
            for seed in (0, 1):
                loss = 3.0 + offset - (0.02 if tokens == 98304 else 0.01) * np.log10(slots) + 0.001 * seed
                rows.append({"overrides": f"+arm=lm_engram engram.table_size={int(slots)} "
                                          f"data.num_tokens={tokens} seed={seed}", "table_size": int(slots),
                             "num_tokens": tokens, "lm_loss": loss})
    rows.append({"overrides": "+arm=lm_capacity1 data.num_tokens=98304", "table_size": 1, "num_tokens": 98304,
                 "lm_loss": 2.5})
    df = pd.DataFrame(rows).assign(label=lambda d: d["overrides"], variant="engram", data="text", status="ok",
                                   lm_ppl=lambda d: np.exp(d["lm_loss"]))
    md, plots = lm_section(df, tmp_path, markdown_table)
    slopes = [line for line in md if line.startswith("Fitted slope")]
    assert len(slopes) == 2 and any("-0.0100 nats" in line and "24576" in line for line in slopes)
    assert any("-0.0200 nats" in line and "98304" in line for line in slopes)
    drawn = plots["loss_vs_slots.png"]
    assert all("capacity1" not in name for name in drawn)  # one slot size: no line, no fit
    tokens = plots["loss_vs_tokens.png"]  # per slot size: loss against the two data scales, named by what differs
    assert {name for name in tokens if name.startswith("engram.table_size=")} == {
        f"engram.table_size={n}" for n in (1000, 10000, 100000)}


def test_the_report_draws_loss_against_the_memorys_share_with_the_seed_spread(tmp_path):
    """experiment=lm_allocation's plot: rho from each run's accounting (table / (table + idle experts)), the mean
    and the range over seeds per share, the dense runs as a line."""
    idle, rows = 1000.0, []
    for rho, losses in ((0.0, (3.0, 3.2)), (0.25, (2.9, 2.95)), (1.0, (3.4, 3.6))):
        for seed, loss in enumerate(losses):
            rows.append({"label": f"rho={rho} seed={seed}", "variant": "engram" if rho else "baseline", "data": "text",
                         "lm_loss": loss, "lm_ppl": np.exp(loss), "table_params": rho * idle,
                         "idle_expert_params": (1 - rho) * idle, "status": "ok"})
    rows.append({"label": "dense", "variant": "baseline", "data": "text", "lm_loss": 3.5, "lm_ppl": np.exp(3.5),
                 "table_params": 0.0, "idle_expert_params": 0.0, "status": "ok"})
    md, plots = lm_section(pd.DataFrame(rows), tmp_path, markdown_table)
    assert (tmp_path / "loss_vs_rho.png").is_file() and any("rho" in line for line in md)
    drawn = plots["loss_vs_rho.png"]
    means = drawn["MoE experts + memory rows (equal total parameters)"]
    assert [p[0] for p in means] == [0.0, 0.25, 1.0] and [p[1] for p in means] == pytest.approx([3.1, 2.925, 3.5])
    assert [p[1] for p in drawn["dense, equal active FLOPs"]] == pytest.approx([3.5, 3.5])


def test_token_classes_and_bigram_counts():
    texts = ["def", " get", "_item", "(", " Paris", " of", " 42", " ", "x"]
    assert classify(texts) == ["function_word", "word_start", "inside_word", "punctuation", "name_start",
                               "function_word", "number", "whitespace", "word_start"]
    counts = BigramCounts(torch.tensor([[1, 2, 3, 1, 2]]), vocab=10)
    assert counts.of(torch.tensor([[5, 1, 2, 3]])).tolist() == [[-1, 0, 2, 1]]
    assert [bucket_of(c) for c in (0, 1, 9, 10, 99, 100, 5000)] == ["0", "1-9", "1-9", "10-99", "10-99", "100+",
                                                                    "100+"]


def test_gate_by_class_averages_the_memorys_own_gate_record():
    model, tok = load_model("tiny")
    model = add_engram(model, deepseek(gate_bias=1.0, init_std=1.0), tokenizer=tok)
    ids = torch.tensor([tok("The cat of Bob_Smith sat. The cat ran 42 times.", add_special_tokens=False)["input_ids"]])
    by_class = GateByClass(tok, BigramCounts(ids, len(tok)))
    with torch.no_grad(), model.tracing() as traces:
        model(ids)
    by_class({"input_ids": ids}, traces)
    gate = traces[1].entering()[0]
    classes = classify(token_texts(tok, ids[0].tolist()))
    metrics = by_class.metrics()
    for c in set(classes):
        expected = float(gate[[i for i, k in enumerate(classes) if k == c]].mean())
        assert metrics[f"gate_class/layer1/{c}"] == pytest.approx(expected, rel=1e-6)
        assert metrics[f"gate_class/share/{c}"] == pytest.approx(classes.count(c) / len(classes))
    assert gate.std() > 0  # the classes differ, so a mix-up of positions would show
    freq = BigramCounts(ids[:, :6], len(tok)).of(ids)[0]  # counted on the first six tokens only
    by_freq = GateByClass(tok, BigramCounts(ids[:, :6], len(tok)))
    by_freq({"input_ids": ids}, traces)
    unseen = [t for t in range(1, ids.shape[1]) if freq[t] == 0]
    assert unseen and by_freq.metrics()["gate_freq/layer1/0"] == pytest.approx(float(gate[unseen].mean()), rel=1e-6)


def test_benchmark_row_measures_memory_training_against_the_frozen_base(capsys):
    from benchmarks import run

    assert run.main(["--quick", "--only", "lm"]) == 0
    out = capsys.readouterr().out
    assert "12 lm frozen base fwd+bwd (128 tokens)" in out and "12 lm engram[1] training tokens/s / frozen base" in out


def test_a_scratch_model_trains_on_text_with_its_own_byte_level_vocabulary(tmp_path):
    """model=scratch data=text: a byte-level BPE of data.text.vocab_size trained on the training split (decodes
    every text back to itself), then a small decoder trained from scratch on it, scored in bits per byte."""
    from engram.data.families.text import build_text_tokenizer
    from engram.training.pipeline import train

    corpus = write_corpus(tmp_path / "corpus", 40, words=120)
    cfg = tiny_cfg(tmp_path / "run", "model=scratch", "data=text", f"data.path={corpus}", "data.text.vocab_size=300",
                   "data.block_size=32", "data.num_tokens=512", "data.eval_tokens=128", "variant=baseline",
                   "model.hidden_size=32", "model.intermediate_size=64", "model.attention_window=null")
    tok = build_text_tokenizer(cfg.data)
    assert len(tok) == 300 and tok.eos_token == "<|endoftext|>"
    text = "Zürich, naïve café — 'quoted' text\n\twith tabs."  # not in the corpus: bytes cover it
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert build_text_tokenizer(cfg.data).get_vocab() == tok.get_vocab()  # deterministic: a run dir rebuilds it
    metrics, objects = train(cfg)
    assert objects["model"].config.vocab_size == 300 and math.isfinite(metrics["lm/bpb"])
    assert metrics["lm/ppl"] == pytest.approx(math.exp(metrics["lm/loss"])) and metrics["lm/bpb"] > 0
    assert "lm/ppl_base" not in metrics  # no pretrained base to compare with: the model is the run's own
