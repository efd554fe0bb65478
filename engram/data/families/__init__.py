"""The data families, one module each (`data=<module name>`), each exposing `build(data_cfg) -> {"train": [...],
"eval": [...]}` of records `{"prompt", "answer", "category", "key", "seen"}`, deterministic in `data_cfg.seed`. A
family is one module: its records, its rules and options, all here (shared helpers: engram/data/records.py,
keyed_facts.py).

The interface is the `Family` protocol in engram/protocols.py, and `FamilyOptions` the optional attributes beside
`build` (`check`, `check_run`, `generated`, `from_files`, `paraphrased`, `language_model`, `checks_own_paths`,
`tokenizer`; engram/registry.py's `attribute` reads them; a plugin sets them on the function it registers).
"""
