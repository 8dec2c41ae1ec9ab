"""Models: the backbone trunks, the guide alignment module (reference, memory-efficient and
Triton implementations), the FGRA network with its Table-2 variants, and the losses.

May import: ``utils``, ``config``.
"""
from fgra_core.models.backbones import BACKBONE_CHANNELS, build_backbone
from fgra_core.models.fgra import FGRA, VARIANTS, FGRAOutput, VariantSpec, get_variant
from fgra_core.models.gam import GAM, GAMOutput, gam_efficient, gam_reference

__all__ = ["BACKBONE_CHANNELS", "build_backbone", "FGRA", "FGRAOutput", "VARIANTS", "VariantSpec",
           "get_variant", "GAM", "GAMOutput", "gam_efficient", "gam_reference"]
