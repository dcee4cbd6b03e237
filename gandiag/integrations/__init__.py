"""Integrations with training frameworks.

Each lives in its own module and imports its framework there, so gandiag's core
never needs one: ``gandiag.integrations.lightning`` needs ``pip install lightning``.
Distributed training (DDP) needs no integration: the Monitor itself detects an
initialised ``torch.distributed`` process group.
"""
