"""The data families, one module each (`data=<module name>`), each exposing `build(data_cfg) -> {"train": [...],
"eval": [...]}` of records `{"prompt", "answer", "category", "key", "seen"}`, deterministic in `data_cfg.seed`. The
built-in families' code lives in engram/data/<family>.py; these modules name it.

The interface is the `Family` protocol in engram/protocols.py, and `FamilyOptions` the optional attributes beside
`build` (`check`, `check_run`, `generated`, `from_files`, `paraphrased`, `language_model`, `checks_own_paths`,
`tokenizer`; engram/registry.py's `attribute` reads them; a plugin sets them on the function it registers).
"""
