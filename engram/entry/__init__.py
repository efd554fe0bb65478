"""The console scripts (pyproject's [project.scripts]) and the bodies of the root scripts train.py, evaluate.py,
report.py and demo.py, which only call them. Top of engram.LAYERS: an entry point may join any layers."""
