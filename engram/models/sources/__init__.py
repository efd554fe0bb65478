"""The model sources, one module each (`model=<module name>`), each exposing a class `Source` with
`shape(cfg) -> (decoder layers, hidden size)` (from the model's config only: torch-free, used by validation) and
`load(cfg) -> (model, tokenizer)`; `cfg` is the `model:` section as a dict, plus `cfg["data"]` (the `data:` section)
when the caller passes it (`load_model(cfg.model, data=cfg.data)`). Shared code: engram/models/loading.py.

Optional module attributes (engram/registry.py's `attribute`): `check(model_cfg)`, the source's own config rules
(torch-free, raise ConfigError); `llama = True`, LoRA target modules are checked against Llama's module names;
`from_scratch = True`, the model is built fresh from config: every base weight trains in every variant, LoRA is
refused (model=scratch)."""
