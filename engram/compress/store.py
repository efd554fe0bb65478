"""The engram store: engram vectors + metadata in an embedded LanceDB table on disk, retrieval by a key vector, and
export to safetensors.

Why LanceDB: embedded (a directory of Lance files, no server, nothing to start), persisted on every write, a small
dependency set (one wheel with the Rust engine, plus pyarrow which `datasets` already needs) and no telemetry or
ONNX/embedding-model stack (chromadb brings onnxruntime, posthog telemetry and a SQLite-backed server layer). Vectors
go in as Arrow lists; its vector search (cosine) is exact over a table this size, with ANN indexes available later.

One store holds the engrams of one extraction setting: the table's schema metadata records model, layer, dim and
pooling (and the layer of the retrieval keys), and adding vectors of any other setting is refused with one line
(`StoreMismatchError`). Each row: the document id and title, the retrieval key (`vector`, [dim]), the engram
vectors (flattened [k * dim]), k, and the document's token count (for the compression ratio).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engram.atomic import atomic_write
from engram.config import ConfigError

os.environ.setdefault("LANCE_LOG", "error")  # the engine's Rust logger: no "creating a new dataset" warnings
import lancedb  # noqa: E402 - after its log level is set
import pyarrow as pa  # noqa: E402

TABLE = "engrams"


class StoreMismatchError(ConfigError):
    """Vectors of a different model / layer / dim / pooling than the store holds; the message is one line,
    `config error: store=<dir> holds engrams of ...; refusing vectors of ...`."""


@dataclass(frozen=True)
class StoreSpec:
    model: str
    layer: int
    dim: int
    pooling: str
    key_layer: int  # the retrieval keys: mean state at this layer
    # the width of one engram vector when it is not `dim`: a kv engram's vector is one memory token's keys and
    # values at every layer (0 = dim: pooled and embedding engrams; stores written before it hold 0)
    width: int = 0

    @property
    def vector_width(self) -> int:
        return self.width or self.dim

    def describe(self) -> str:
        return (f"model={self.model} layer={self.layer} dim={self.dim} pooling={self.pooling} "
                f"key_layer={self.key_layer}" + (f" width={self.width}" if self.width else ""))


@dataclass
class Engram:
    doc_id: str
    title: str
    vectors: torch.Tensor  # [k, dim] (kv engrams: [k, width])
    key: torch.Tensor  # [dim], what a question's key is compared with
    doc_tokens: int

    @property
    def k(self) -> int:
        return int(self.vectors.shape[0])


class EngramStore:
    """An engram table in the LanceDB directory `path` (created on the first `add`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = lancedb.connect(str(self.path))
        self._table = self._db.open_table(TABLE) if TABLE in self._table_names() else None

    def _table_names(self) -> list[str]:
        return list(self._db.list_tables().tables)

    @property
    def spec(self) -> StoreSpec | None:
        """The setting the stored vectors come from (None for an empty, new store)."""
        if self._table is None:
            return None
        meta = self._table.schema.metadata or {}
        return StoreSpec(**json.loads(meta[b"engram_spec"]))

    def check(self, spec: StoreSpec) -> None:
        """StoreMismatchError (one line) unless `spec` is the setting of the stored vectors."""
        held = self.spec
        if held is not None and held != spec:
            raise StoreMismatchError("store", self.path, f"holds engrams of {held.describe()}; refusing vectors of "
                                     f"{spec.describe()} (use another store= or rebuild it)")

    def add(self, engrams: Sequence[Engram], spec: StoreSpec) -> None:
        """Insert (or replace, by doc_id) engrams extracted with `spec`."""
        self.check(spec)
        for e in engrams:
            if e.vectors.shape[-1] != spec.vector_width or e.key.shape[-1] != spec.dim:
                raise StoreMismatchError("store", self.path, f"refusing engram {e.doc_id}: its vectors have width "
                                         f"{e.vectors.shape[-1]} and its key dim {e.key.shape[-1]}, the setting says "
                                         f"width={spec.vector_width} dim={spec.dim}")
        rows = [{"doc_id": e.doc_id, "title": e.title, "vector": e.key.float().numpy(),
                 "engram": e.vectors.float().reshape(-1).numpy(), "k": e.k, "doc_tokens": e.doc_tokens}
                for e in engrams]
        if self._table is None:
            self._table = self._db.create_table(TABLE, schema=_schema(spec))
        else:
            ids = ", ".join("'" + e.doc_id.replace("'", "''") + "'" for e in engrams)
            if ids:
                self._table.delete(f"doc_id IN ({ids})")
        if rows:
            self._table.add(rows)

    def __len__(self) -> int:
        return 0 if self._table is None else int(self._table.count_rows())

    def doc_ids(self) -> list[str]:
        if self._table is None:
            return []
        return sorted(self._table.to_arrow().column("doc_id").to_pylist())

    def _missing(self, doc_ids: Sequence[str]) -> None:
        """ConfigError (one line) naming the first id the store does not hold."""
        held = set(self.doc_ids())
        unknown = next((d for d in doc_ids if d not in held), None)
        if unknown is not None:
            raise ConfigError("doc_id", unknown, f"is not in store={self.path} ({len(held)} documents; "
                              "`python -m engram.compress info store=...` lists them)")

    def get(self, doc_id: str) -> Engram:
        """The engram of document `doc_id`."""
        self._missing([doc_id])
        quoted = doc_id.replace("'", "''")
        return self._engram(self._table.search().where(f"doc_id = '{quoted}'").limit(1).to_list()[0])

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove the engrams of `doc_ids` (all or none: an unknown id is one line and nothing goes); how many."""
        self._missing(doc_ids)
        if doc_ids:
            self._table.delete("doc_id IN (" + ", ".join("'" + d.replace("'", "''") + "'" for d in doc_ids) + ")")
        return len(set(doc_ids))

    def sizes(self) -> dict[str, float]:
        """documents, engram vectors (sum of k), their float32 bytes, the bytes the store's directory takes on disk,
        and the mean compression ratio (document tokens per engram vector)."""
        rows = [] if self._table is None else self._table.to_arrow().select(["k", "doc_tokens"]).to_pylist()
        vectors = sum(r["k"] for r in rows)
        width = self.spec.vector_width if self.spec else 0
        on_disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.exists() else 0
        ratios = [r["doc_tokens"] / r["k"] for r in rows if r["k"]]
        return {"documents": len(rows), "vectors": vectors, "vector_bytes": 4 * vectors * width, "disk_bytes": on_disk,
                "compression_ratio": round(sum(ratios) / len(ratios), 2) if ratios else 0.0}

    def all(self) -> list[Engram]:
        if self._table is None:
            return []
        return [self._engram(row) for row in self._table.to_arrow().to_pylist()]

    def search(self, key: torch.Tensor, limit: int = 1) -> list[tuple[Engram, float]]:
        """The `limit` engrams whose keys are nearest to `key` (cosine distance), nearest first."""
        if self._table is None:
            return []
        hits = self._table.search(key.float().numpy()).metric("cosine").limit(limit).to_list()
        return [(self._engram(h), float(h["_distance"])) for h in hits]

    def _engram(self, row: dict) -> Engram:
        vectors = torch.tensor(row["engram"], dtype=torch.float32).reshape(int(row["k"]), -1)
        return Engram(row["doc_id"], row["title"], vectors, torch.tensor(row["vector"], dtype=torch.float32),
                      int(row["doc_tokens"]))

    def export_safetensors(self, path: str | Path) -> Path:
        """All engrams in one safetensors file (`engram/<doc_id>` [k, dim], `key/<doc_id>` [dim]); the spec and the
        titles as metadata. Written atomically."""
        from safetensors.torch import save_file  # lazy: only the export needs it

        engrams, spec = self.all(), self.spec
        tensors = {f"engram/{e.doc_id}": e.vectors.contiguous() for e in engrams}
        tensors.update({f"key/{e.doc_id}": e.key.contiguous() for e in engrams})
        meta = {"spec": json.dumps(asdict(spec) if spec else None),
                "titles": json.dumps({e.doc_id: e.title for e in engrams})}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _schema(spec: StoreSpec) -> pa.Schema:
    return pa.schema([
        pa.field("doc_id", pa.string()), pa.field("title", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), spec.dim)), pa.field("engram", pa.list_(pa.float32())),
        pa.field("k", pa.int32()), pa.field("doc_tokens", pa.int32()),
    ], metadata={"engram_spec": json.dumps(asdict(spec))})
