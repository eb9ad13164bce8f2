"""Layer 9, render: browsable output (images, GIFs, plots, WAVs) and the demo report.

``images``: grids, GIFs and matplotlib plots of arrays; ``swaps``: swap, sample and factor grids
of a model; ``audio``: swapped utterances as WAVs and spectrograms; ``demo``: ``skd demo``.
"""
