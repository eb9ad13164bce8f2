"""Layer 1, files: safe reading and writing of everything on disk, no model code.

``checkpoint``: atomic writes, tensor checkpoints read with ``weights_only=True``;
``runfolder``: the run-folder lock and stale temporary files; ``limits``: memory and size checks
made before anything is allocated.
"""
