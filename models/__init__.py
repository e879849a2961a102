"""The model families: each sub-package holds one family's networks (the official module and
parameter names) and what the trainer and the exporter need from it."""
