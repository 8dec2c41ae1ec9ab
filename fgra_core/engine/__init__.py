"""Engine: one run, whichever its regime (``run``): the fine-tune loop (``finetune``), the
frozen-trunk head regime (``head``, ``trunk_cache``), run records (``run_record``: the rules and
the file names of a run folder), checkpoints, convergence, distributed set-up, builders, the
evaluator and trunk export.

May import: ``utils``, ``config``, ``data``, ``models``, ``eval``.
"""
