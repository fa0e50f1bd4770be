"""Export EfficientViT (and the baselines) to ONNX, TFLite and ExecuTorch, verified against PyTorch.

>>> from effvit_deploy.export import ExportOptions, export
>>> entry = export("efficientvit-b0", ExportOptions(target="onnx", resolution=224, out_dir="export"))
>>> entry["path"], entry["parity"]["max_abs"], entry["cached"]      # the manifest entry, see export/README.md

Subpackages: `deploy` (deploy-form transforms), `targets` (one package per runtime), `quantize` (runtime-agnostic
int8 steps).
"""

from .api import ExportOptions, check_request, export, export_many
from .verify import VerificationError
from .weights import seeded_model

__all__ = ["ExportOptions", "export", "export_many", "check_request", "seeded_model", "VerificationError"]
