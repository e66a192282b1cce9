"""distilnas: one-shot NAS where distillation fixes the ranking of weight-sharing supernets."""

__version__ = "0.1.0"
