"""effvit-deploy: EfficientViT from a PyTorch reference model to a phone, with honest latency numbers."""

__version__ = "0.1.0"
