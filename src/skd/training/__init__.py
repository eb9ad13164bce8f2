"""Layer 6, training: fitting a model to data and the run folders it writes.

``loop``: :func:`train` and its steps, :func:`load_run`; ``resume``: where a run continues and
the config check; ``distributed``: torch.distributed context (DDP, global batch norm);
``launch``: local multi-process launcher.
"""
