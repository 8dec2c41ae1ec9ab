"""The dataset readers (MARS, iLIDS-VID, PRID-2011: their official on-disk layouts) and the
synthetic generator, each returning a :class:`~fgra_core.data.records.VideoDataset`.

May import: ``utils``, ``config`` and the rest of ``data``.
"""
