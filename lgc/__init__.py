"""LGC-SGD trainers: data, partitions, models, aggregation rules, the `sim` (virtual clock,
batched on one device) and `dist` (torch.distributed) backends, and the `lgc` command."""

__version__ = "0.1.0"
