"""The data families, one module each (`data=<module name>`), each exposing `build(data_cfg) -> {"train": [...],
"eval": [...]}` (jsonl may add "test") of records `{"prompt", "answer", "category", "key", "seen"}`, deterministic in
`data_cfg.seed`. The built-in families' code lives in engram/data/<family>.py; these modules name it."""
