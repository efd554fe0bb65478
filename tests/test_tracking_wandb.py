"""Tracking: W&B offline writes a local run with gate statistics and never touches the network; CSV logger."""

from __future__ import annotations

import csv
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from _training_utils import tiny_cfg

from engram.training.pipeline import train

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def read_wandb_history_keys(run_file: Path) -> set[str]:
    """Keys of every history record in a `.wandb` file (LevelDB-log framing: 32 KiB blocks, 7-byte headers).

    Like a LevelDB log reader, a chunk that does not parse drops the rest of its block and reading resumes at the next
    one: a file still being written ends in a partial record (see `history_keys_when_written`).
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, keys = 32768, 7, b"", set()
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += block - pos % block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record, chunk, pending = pb.Record(), pending, b""
            try:
                record.ParseFromString(chunk)
            except DecodeError:
                pos += block - pos % block
                continue
            if record.WhichOneof("record_type") == "history":
                keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return keys


def history_keys_when_written(run_file: Path, expected: set[str], timeout: float = 60.0) -> set[str]:
    """The history keys once `expected` are all in the file. wandb-core's writer may still be flushing the file when
    `wandb.finish()` returns: on a loaded machine the test read a file whose records were not all written yet (its
    keys came out empty; the same file read later held them all)."""
    deadline = time.monotonic() + timeout
    while True:
        keys = read_wandb_history_keys(run_file)
        if expected <= keys or time.monotonic() > deadline:
            return keys
        time.sleep(0.5)


class ConnectionRecorder:
    """A local TCP listener standing in for the W&B server and for any HTTP(S) proxy: counts who calls."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Fail any Python-level connection to a non-loopback address; route wandb's own calls to a local recorder."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:  # type: ignore[index]
            attempts.append(address)
            raise OSError(f"network access attempted: {address}")
        return real_connect(self, address)

    recorder = ConnectionRecorder()
    url = f"http://127.0.0.1:{recorder.port}"
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    for var in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield {"attempts": attempts, "recorder": recorder}
    recorder.sock.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the config's default must make it offline by itself
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))


def test_wandb_offline_run_has_gate_statistics_and_no_network(tmp_path: Path, no_network: dict) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "variant=engram", "logger=wandb", "trainer.max_steps=3", "experiment_name=wb_test")
    assert cfg.logger.mode == "offline"
    metrics, objects = train(cfg)

    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((run_dir / "wandb").iterdir())
    expected = {"engram/layer1/gate_mean", "engram/layer1/gate_std", "engram/layer1/gate_open_frac",
                "engram/layer1/slot_utilisation", "engram/layer1/collision_rate", "train/loss_step", "train/lr",
                "train/step_time_s", "train/tokens_per_s", "eval/exact_match", "eval/retention", "params/trainable"}
    keys = history_keys_when_written(next(runs[0].glob("run-*.wandb")), expected)
    assert expected <= keys, sorted(expected - keys)
    assert any(k.startswith("engram/layer1/gate_hist/") for k in keys)  # wandb.Histogram
    assert any(k.startswith("eval/examples") for k in keys)  # the per-example table
    assert no_network["attempts"] == [] and no_network["recorder"].connections == 0

    run = objects["loggers"][0]._experiment
    assert run.project == "engram-lab" and run.group == "wb_test"
    assert {"variant:engram", "model:tiny", "data:exact_match"} <= set(run.tags)
    assert run.config["engram"]["table_size"] == 512  # the resolved config is the run config


def test_csv_logger_writes_step_and_gate_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "variant=engram", "logger=csv")
    train(cfg)
    with open(run_dir / "csv" / "metrics.csv") as f:
        columns = set(next(csv.reader(f)))
    assert {"train/loss_step", "train/tokens_per_s", "engram/layer1/gate_mean", "eval/exact_match"} <= columns
    assert (run_dir / "csv" / "hparams.yaml").is_file()


def test_wandb_jobs_in_one_process_leave_the_environment_as_they_found_it(
    tmp_path: Path, no_network: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multirun runs its jobs in one process: the first job's W&B run (Lightning sets WANDB_MODE=dryrun) must not
    decide the next job's logger.mode or where its files go."""
    monkeypatch.delenv("WANDB_DIR", raising=False)
    for job in ("0", "1"):
        cfg = tiny_cfg(tmp_path / job, "variant=baseline", "variant.finetune=full", "logger=wandb",
                       "trainer.max_steps=1", "experiment_name=wb_multirun")
        assert cfg.logger.mode == "offline"  # composed from the environment the previous job left
        train(cfg)
        assert len(list((tmp_path / job / "wandb").glob("offline-run-*"))) == 1
        assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ
