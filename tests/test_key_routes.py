"""benchmarks/key_routes.py's scoring on the tiny model: each route scores a prompt highest against itself, the lexical
route matches a template rewording and not a neighbour, and the curve's operating points are where they should be."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` is a top-level directory

from benchmarks import key_route_scores as ks  # noqa: E402
from engram.models.loading import load_model  # noqa: E402

TAUGHT = ["What is the capital of France?", "[Q17] Velora Thandrik was born in the year", "Convert 5 km to m."]
OTHER = ["Which continent is Japan in?", "Is 12 an even number?", "Who discovered Gallium?"]


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, object]:
    model, tok = load_model("tiny")
    return model.requires_grad_(False).eval(), tok


def test_every_route_scores_a_prompt_highest_against_itself(tiny: tuple[torch.nn.Module, object]) -> None:
    model, tok = tiny
    taught = ks.encode(model, tok, TAUGHT, "chat", act_layers=[1], token_layer=1, batch_size=2)
    calib = ks.encode(model, tok, OTHER, "chat", act_layers=[1], token_layer=1)
    assert taught.last.shape == (3, model.config.num_hidden_layers + 1, model.config.hidden_size)
    # the question tokens only, not the chat template around them
    assert tok.decode(taught.token_ids[0]).strip() == TAUGHT[0]
    idf = ks.idf_weights(taught.token_ids + calib.token_ids)
    routes = {
        "last": ks.cosine(taught.last[:, 2], taught.last[:, 2], calib.last[:, 2]),
        "mean": ks.cosine(taught.mean[:, 1], taught.mean[:, 1], calib.mean[:, 1]),
        "memoir": ks.mask_overlap(taught.act[1], taught.act[1], calib.act[1], 20),
        "tokens": ks.token_alignment(taught.token_states, taught.token_states, taught.token_ids, calib.token_states,
                                     idf),
    }
    for name, scores in routes.items():
        assert scores.shape == (3, 3), name
        assert torch.allclose(scores.diagonal(), scores.max(-1).values), name
        assert torch.allclose(scores.diagonal(), torch.ones(3), atol=1e-4), name
        assert torch.equal(ks.best(scores)[1], torch.arange(3)), name


def test_the_lexical_route_reads_prompts_as_hash_question_does(tiny: tuple[torch.nn.Module, object]) -> None:
    _, tok = tiny
    reader = ks.LexicalReader(tok, "chat")
    taught = reader.read(TAUGHT)
    assert "france" in taught[0].entities and not taught[0].entities & reader.reader.template  # template skipped
    queries = reader.read(["Which city is the capital of France?", "What is the official language of France?",
                           "What is the capital of Germany?"])
    scores, index = ks.lexical_best(ks.lexical_index(taught), queries)
    assert index[0] == 0 and scores[0] >= 0.4  # the rewording: its own fact, above the product's threshold
    assert scores[1] < 0.4 and scores[2] == ks.NEVER  # the neighbour stays below; another entity has no candidate
    candidates = ks.entity_candidates(queries, taught)
    # the rewording names France (a candidate); Germany is no taught entity (none). The neighbour's row depends on
    # which words the tiny vocabulary spells in pieces (a made-up-looking "capital" is a name there).
    assert candidates[0].tolist() == [True, False, False] and not candidates[2].any()
    assert ks.among(torch.ones(3, 3), candidates)[2].max() == ks.NEVER


def test_the_curve_and_its_operating_points() -> None:
    rewordings = (torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0, 1, 9, 3]))  # the third matches another fact
    negatives = {"neighbors": torch.tensor([0.65, 0.1]), "general": torch.tensor([0.2, 0.85])}
    c = ks.curve(rewordings, torch.tensor([0, 1, 2, 3]), negatives)
    assert c["thresholds"][-1] == float("inf") and c["rewordings"][-1] == 0.0
    points = ks.operating_points(c, ["neighbors", "general"], limit=0.05)
    # (i): a general prompt scores 0.85, so only 0.9 keeps every negative set quiet
    assert points["at_limit"]["threshold"] == pytest.approx(0.9) and points["at_limit"]["rewordings"] == 0.25
    # (ii) rewordings - neighbours: 0.75 - 0.5 at 0.6, 0.5 - 0 at 0.7 and 0.8 (the highest of the ties)
    assert points["best"]["threshold"] == pytest.approx(0.8) and points["best"]["rewordings"] == 0.5
    assert points["best"]["general"] == 0.5
    assert ks.at_threshold(c, ["neighbors"], 0.65)["rewordings"] == 0.5
    assert ks.auc(torch.tensor([1.0, 2.0]), torch.tensor([0.0])) == 1.0


def test_the_benchmark_data_keeps_queries_apart_from_taught_prompts() -> None:
    from benchmarks.key_routes import prompt_sets

    sets = prompt_sets(num_train=9, num_eval=6, general=10, seed=0)
    taught = set(sets["taught"])
    assert not taught & set(sets["rewordings"] + sets["neighbors"] + sets["unseen"] + sets["general"])
    assert not set(sets["general"]) & set(sets["calibration"])
    assert set(sets["family"]) == {"exact_match", "entity", "user_prefs"}
    assert len(sets["rewordings"]) == len(sets["rewording_fact"]) and len(sets["neighbors"]) == len(
        sets["neighbor_fact"])
    # a rewording's taught fact is of its family; an ID-keyed rewording names the taught prompt's ID
    for prompt, fact in zip(sets["rewordings"], sets["rewording_fact"], strict=True):
        if prompt.startswith("["):
            assert sets["taught"][fact].split("]")[0] == prompt.split("]")[0]
