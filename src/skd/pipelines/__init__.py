"""Layer 7, pipelines: procedures on a trained model (take a model, data and a generator).

``ops``: encode/decode, swap, sample, predict; ``basis``: :class:`BasisSpec` and the one function
that fits a Koopman basis on a batch of data; ``pairs``: choosing and parsing sequence pairs;
``split``: the refined (appearance-only) static split; ``factors``, ``dependence``,
``footprint``: label-free discovery of static factor groups; ``factorset``: fitted groups saved
beside a run.
"""
