"""Layer 8, evaluation: scoring a trained model.

``judge``: the judge classifier; ``metrics``: pure metrics (Acc, IS, entropies, confusion);
``two_factor``: Protocols A and B; ``multifactor``: the factor × judge-head matrix; ``audio``:
speaker EER and probes for speech; ``probes``: linear probes; ``scorecard``: all targets in one table.
"""
