"""Analysis of finished runs: statistics (``stats``), the paper's claims (``claims``), the tables
(``tables``) and the study's figures (``figures``).

May import: ``utils``, ``config``, ``models``, ``engine`` (run records, convergence).
"""
