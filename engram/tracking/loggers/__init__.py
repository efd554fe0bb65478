"""The `logger` kind (engram/registry.py): one module per `logger=<name>` option, each exposing
`build(cfg, run_dir) -> list[Logger]` (Lightning loggers; `cfg` is the run's config, `cfg.logger` the option's keys).

    wandb        W&B, offline files in <run dir>/wandb unless logger.mode=online
    csv          <run dir>/csv/metrics.csv + hparams.yaml
    tensorboard  <run dir>/tensorboard (event files: `tensorboard --logdir <run dir>`)
    mlflow       SQLite store <run dir>/mlflow.db unless logger.tracking_uri names a shared store or a server
    many         every logger in logger.loggers
    none         no logger

`engram.tracking.run_log.build_loggers` is the one way every logger is built (a plugin registers its own `build`).
A logger that records more than scalars offers `log_histograms(hists, step)` (gate values) and
`log_tables(tables, step)` (the per-example eval tables); engram/tracking/run_log.py calls them where present.
Listing the names imports nothing (config validation stays torch-free): the modules load on `registry.get`.
"""
