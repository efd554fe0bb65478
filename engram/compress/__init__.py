"""Semantic-compression engrams: a document's hidden states at layer N pooled into k vectors, stored in an embedded
vector database, and injected back into a prompt as `[ENGRAM]` synthetic tokens.

    documents.py  fictional biographies + QA, stdlib docstrings, JSONL     pooling.py / head.py  k vectors from [T, d]
    extract.py    layer-N states of a document                             inject.py   [ENGRAM] -> vectors at layer N
    prompts.py    full / engram / none prompts                             scoring.py  exact match, generation
    store.py      LanceDB store (+ safetensors export)                     session.py  the loaded model + helpers
    conditions.py the evaluation rows    head_training.py  the head's loop    results.py  compress.json / .md / W&B
    config.py     conf/compress.yaml checks    run.py  build / ask / eval / sweep    __main__.py  the CLI
"""
