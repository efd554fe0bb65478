"""The data families, one module each (`data=<module name>`), each exposing `build(data_cfg) -> {"train": [...],
"eval": [...]}` (jsonl may add "test") of records `{"prompt", "answer", "category", "key", "seen"}`, deterministic in
`data_cfg.seed`. The built-in families' code lives in engram/data/<family>.py; these modules name it. An eval record
may also carry "paraphrases" (other wordings of its prompt): `engram.data.build_splits` then adds the "paraphrase"
split.

Optional, beside `build` (engram/registry.py's `attribute`; a plugin sets them on the function it registers):
    check(data_cfg)      the family's own config rules (torch-free; raise engram.config_rules.ConfigError)
    generated = True     built from data.seed: num_train + num_eval are capped (False: read from files)
    from_files = False   True: no training records means data.path (not num_train) is to blame
    paraphrased = False  True: eval/consistency is reported (items asked in several phrasings)
    tokenizer(data_cfg)  the family's own tokenizer (a transformers tokenizer), for models built from scratch
                         on its vocabulary (model=scratch); absent = the family has none
"""
