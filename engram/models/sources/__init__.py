"""The model sources, one module each (`model=<module name>`), each exposing a class `Source` with
`shape(cfg) -> (decoder layers, hidden size)` (from the model's config only: torch-free, used by validation) and
`load(cfg) -> (model, tokenizer)`; `cfg` is the `model:` section as a dict. Shared code: engram/models/loading.py."""
