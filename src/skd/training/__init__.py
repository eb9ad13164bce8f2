"""Layer 6, training: fitting a model to data and the run folders it writes.

``loop``: :func:`train` and its steps, :func:`load_run`; ``context``: the distributed context of
a run (rank, device, collectives); ``runlog``: metrics.jsonl and the progress bar; ``resume``:
where a run continues and the config check; ``distributed``: torch.distributed (DDP, global
batch norm); ``launch``: local multi-process launcher.
"""
