"""Export EfficientViT (and the baselines) to ONNX, TFLite and ExecuTorch, verified against PyTorch.

>>> from effvit_deploy.export import export
>>> entry = export("efficientvit-b0", "onnx", "224", out_dir="export")   # the manifest entry, see export/README.md

Subpackages: `deploy` (deploy-form transforms), `targets` (one backend per target), `quantize` (int8).
"""

from .api import check_request, export, export_many
from .verify import VerificationError
from .weights import seeded_model

__all__ = ["export", "export_many", "check_request", "seeded_model", "VerificationError"]
