"""TensorBoard, MLflow and logger=many: each run read back with the library's own reader (tensorboard's
EventAccumulator, the MLflow client on the store); tags and seed in every logger and in eval.json; bad options."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _training_utils import tiny_cfg

from engram.config.rules import ConfigError
from engram.training.pipeline import train

pytest.importorskip("tensorboard", reason="the trackers extra (make test installs it)")
pytest.importorskip("mlflow", reason="the trackers extra (make test installs it)")

SCALARS = ("engram/layer1/gate_mean", "engram/layer1/gate_open_frac", "train/loss_step", "train/lr",
           "eval/exact_match", "eval/retention")
TAGS = ("tags=[ablation,night]", "seed=7")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def read_tensorboard(run_dir: Path) -> object:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def text(acc: object, tag: str) -> str:
    return acc.Tensors(tag)[-1].tensor_proto.string_val[0].decode()


def read_mlflow(uri: str, experiment: str) -> tuple[object, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def check_tensorboard(run_dir: Path) -> None:
    acc = read_tensorboard(run_dir)
    tags = acc.Tags()
    assert set(SCALARS) <= set(tags["scalars"]), tags["scalars"]
    assert "engram/layer1/gate_hist" in tags["histograms"], tags["histograms"]
    assert "| prompt | expected |" in text(acc, "eval/examples/text_summary")
    assert text(acc, "run/tags/text_summary") == "variant:engram, model:tiny, data:exact_match, ablation, night"
    assert text(acc, "run/seed/text_summary") == "7"
    hparams = (run_dir / "tensorboard" / "hparams.yaml").read_text()  # the config as Lightning records it
    assert "seed: 7" in hparams and "table_size: 512" in hparams


def check_mlflow(uri: str, experiment: str) -> None:
    import mlflow

    client, run = read_mlflow(uri, experiment)
    assert set(SCALARS) <= set(run.data.metrics), run.data.metrics
    assert run.data.params["engram/table_size"] == "512" and run.data.params["seed"] == "7"
    assert run.data.tags["seed"] == "7" and run.data.tags["variant"] == "engram" and run.data.tags["ablation"] == "true"
    assert run.data.tags["tags"] == "variant:engram,model:tiny,data:exact_match,ablation,night"
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss_step")
    assert len(history) >= 2
    table = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/eval/examples.json")
    assert table["columns"][:3] == ["prompt", "expected", "generated"] and len(table["data"]) > 0


def test_tensorboard_run_reads_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(tiny_cfg(run_dir, "variant=engram", "logger=tensorboard", "trainer.max_steps=3", *TAGS))
    check_tensorboard(run_dir)
    info = json.loads((run_dir / "eval.json").read_text())["info"]
    assert info["seed"] == 7
    assert info["tags"] == ["variant:engram", "model:tiny", "data:exact_match", "ablation", "night"]


def test_mlflow_local_store_in_the_run_dir_reads_back(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(tiny_cfg(run_dir, "variant=engram", "logger=mlflow", "trainer.max_steps=3", "experiment_name=mf", *TAGS))
    assert (run_dir / "mlflow.db").is_file() and (run_dir / "mlartifacts").is_dir()
    check_mlflow(f"sqlite:///{(run_dir / 'mlflow.db').resolve()}", "mf")


def test_many_loggers_with_a_shared_mlflow_store(tmp_path: Path) -> None:
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'shared.db'}"
    train(tiny_cfg(run_dir, "variant=engram", "logger=many", "logger.loggers=[tensorboard,mlflow,csv]",
                   f"logger.tracking_uri={uri}", "trainer.max_steps=3", "experiment_name=many", *TAGS))
    check_tensorboard(run_dir)
    check_mlflow(uri, "many")
    assert "eval/exact_match" in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert not (run_dir / "mlflow.db").exists()  # the shared store, not the run dir's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on the loopback address (SQLite backend, proxied artifacts), stopped afterwards."""
    port = free_port()
    server = tmp_path / "server"
    server.mkdir()
    log = (server / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{server / 'mlflow.db'}", "--artifacts-destination", str(server / "art")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""}, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start: " + (server / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, 15)  # the server and its uvicorn worker
        proc.wait(timeout=30)
        log.close()


def test_mlflow_run_logged_to_a_real_server_over_http(tmp_path: Path, mlflow_server: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """logger.tracking_uri=http://...: the run goes to the server over HTTP, artifacts through its proxy; the client
    reads it back from the server, and nothing is stored in the run dir."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # artifacts' mlflow-artifacts:/ URIs resolve via it
    run_dir = tmp_path / "run"
    train(tiny_cfg(run_dir, "variant=engram", "logger=mlflow", f"logger.tracking_uri={mlflow_server}",
                   "trainer.max_steps=3", "experiment_name=served", *TAGS))
    check_mlflow(mlflow_server, "served")
    assert not (run_dir / "mlflow.db").exists() and not (run_dir / "mlartifacts").exists()
    assert list((tmp_path / "server" / "art").rglob("examples.json"))  # the server wrote the artifact


@pytest.mark.parametrize(("override", "message"), [
    ("logger.loggers=[tensorboard,nope]", "logger.loggers=['tensorboard', 'nope'] must be a non-empty list of"),
    ("logger.loggers=[]", "logger.loggers=[] must be a non-empty list of"),
    ("logger.tracking_uri=somewhere", "logger.tracking_uri=somewhere must be a URI of"),
])
def test_bad_logger_options_are_one_line_errors(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tiny_cfg(tmp_path, "logger=many", override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_logger_key_and_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="logger"):
        tiny_cfg(tmp_path, "logger=mlflow", "+logger.trackin_uri=http://127.0.0.1:5000")
    with pytest.raises(Exception, match="tensorbored"):
        tiny_cfg(tmp_path, "logger=tensorbored")


def test_deterministic_runs_give_bit_identical_weights(tmp_path: Path) -> None:
    """trainer.deterministic=true with the same seed: two runs of the tiny model write the same memory, bit for bit."""
    from safetensors.torch import load_file

    weights = []
    for job in ("a", "b"):
        train(tiny_cfg(tmp_path / job, "variant=engram", "trainer.deterministic=true", "trainer.max_steps=3", "seed=3"))
        weights.append(load_file(str(tmp_path / job / "engram.safetensors")))
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for key in weights[0]:
        assert weights[0][key].equal(weights[1][key]), key
