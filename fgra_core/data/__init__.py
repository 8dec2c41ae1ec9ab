"""Data: tracklet records, the dataset readers (``datasets/``: MARS, iLIDS-VID, PRID-2011, the
synthetic set), frame listing and decoding, splits, temporal sampling, clip-consistent
transforms, identity samplers, loaders and the GPU-fed path (packed frames, device transforms).

May import: ``utils``, ``config``.
"""
from fgra_core.data.datasets.ilidsvid import load_ilidsvid
from fgra_core.data.datasets.mars import load_mars, parse_mars_info
from fgra_core.data.datasets.prid2011 import load_prid2011
from fgra_core.data.datasets.synthetic import make_synthetic, part_offsets
from fgra_core.data.frames import FrameCache, read_image, sort_frames
from fgra_core.data.loaders import TrackletFramesDataset, TrainClipDataset, build_train_loader, load_frames
from fgra_core.data.records import PART_NAMES, Tracklet, VideoDataset, relabel
from fgra_core.data.registry import build_dataset
from fgra_core.data.samplers import RandomIdentitySampler
from fgra_core.data.sampling import test_clips, train_indices
from fgra_core.data.transforms import ClipTransform

__all__ = [
    "FrameCache", "read_image", "sort_frames", "load_ilidsvid", "TrackletFramesDataset", "TrainClipDataset",
    "build_train_loader", "load_frames", "load_mars", "parse_mars_info", "load_prid2011", "PART_NAMES", "Tracklet",
    "VideoDataset", "relabel", "build_dataset", "RandomIdentitySampler", "test_clips", "train_indices",
    "make_synthetic", "part_offsets", "ClipTransform",
]
