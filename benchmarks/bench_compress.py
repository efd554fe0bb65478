"""Target 14: the trained compressor's training time (issue 32: compressor training <= 60 min here). One QA step of
`python -m engram.compress train` as the record trains it (carrier kv, k = 16 memory tokens, LoRA rank 16, 4
training biographies and their 24 questions per step, Adam), timed over a few rounds; the 300 QA steps of the
record's recipe projected from its median. The pretraining steps are not counted (none in the QA-only recipe)."""

from __future__ import annotations

from benchmarks.common import Row, check, interleaved, median, spread

QA_STEPS = 300  # the record's recipe (experiments/compress_trained.yaml)
LIMIT_MIN = 60.0


def compress_speed(model: str, rounds: int, warmup: int, k: int = 16, docs_per_step: int = 4) -> list[Row]:
    import torch

    from engram.compress.compressor import Compressor, CompressorSettings
    from engram.compress.compressor_training import examples_loss, qa_examples
    from engram.compress.documents import biographies
    from engram.compress.session import open_session

    session = open_session({"name": model})
    compressor = Compressor(session.model, CompressorSettings(k, "kv", "prefix"))
    optimizer = torch.optim.Adam(compressor.trainable(), lr=2e-3)
    examples = qa_examples(session, compressor, biographies(docs_per_step, seed=1000))
    compressor.train()

    def step() -> None:
        loss = examples_loss(session, compressor, examples)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = interleaved({"qa step": step}, rounds, warmup)["qa step"]
    minutes = QA_STEPS * median(times) / 60
    compressor.close()
    return [Row(f"14 compress kv k={k} QA step ({docs_per_step} documents, {len(examples)} questions)",
                f"{median(times):.2f} s/step", note=spread(times)),
            check(f"14 compress {QA_STEPS} QA steps projected (minutes / {LIMIT_MIN:g})", f"{minutes:.1f} min",
                  minutes / LIMIT_MIN, "<=", 1.0)]
