"""Evaluation: test-time features, distances, CMC / mAP for each protocol, optional re-ranking.

```python
feats = extract_features(model, tracklets, seq_len=6, transform=t, device="cuda", load_frames=load)
result = evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, protocol="gallery-minus-query")
result = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, protocol="official")
summary = summarise_splits([result_split_0, ..., result_split_9])
```

May import: ``utils``, ``config``, ``data``, ``models``.
"""
from fgra_core.eval.distance import cosine_distance, euclidean_distance
from fgra_core.eval.features import ExtractionStats, extract_features, extract_features_naive
from fgra_core.eval.protocols import AP_FORMS, PROTOCOLS, RankResult, build_protocol_gallery, summarise_splits
from fgra_core.eval.rank import evaluate_features, evaluate_rank
from fgra_core.eval.reference import evaluate_rank_reference
from fgra_core.eval.rerank import re_ranking

__all__ = [
    "AP_FORMS",
    "PROTOCOLS",
    "ExtractionStats",
    "RankResult",
    "build_protocol_gallery",
    "cosine_distance",
    "euclidean_distance",
    "evaluate_features",
    "evaluate_rank",
    "evaluate_rank_reference",
    "extract_features",
    "extract_features_naive",
    "re_ranking",
    "summarise_splits",
]
