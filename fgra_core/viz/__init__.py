"""Response maps of a trained run (Fig. 5) and the ipywidgets region response explorer.

May import: ``utils``, ``config``, ``data``, ``models``, ``engine``, ``analysis`` (the figure saver).
"""
