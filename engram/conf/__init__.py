"""The Hydra configs, shipped inside the package (so an installed wheel has them): train.yaml, evaluate.yaml and
compress.yaml are the roots, each folder a config group. `experiment/` is a link to the repo's experiments/ (the
records sit beside their results); a wheel gets a copy of the YAMLs. The entry points name this folder as
`pkg://engram.conf`; CONF_DIR is the same folder on disk (the group checks list its YAMLs, the tests compose it)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
SEARCH_PATH = "pkg://engram.conf"
