"""Run configuration: the typed, validated settings of one run (``schema``), their value checks
(``checks``), strict YAML (``yaml_strict``) and the packaged configurations (``packaged``,
``configs/*.yaml``).

May import: ``utils``.
"""
