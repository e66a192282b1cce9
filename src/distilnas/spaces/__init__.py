"""Search spaces, one module each, registered in :data:`SPACES`."""

from .base import SPACES, SearchSpace, count_flops, count_params, create_space
from .nb201 import NB201Arch, NB201Config, NB201Network, NB201Space
from .resnet import ResNetArch, ResNetConfig, ResNetSpace, ResNetSupernet

__all__ = [
    "SPACES", "SearchSpace", "count_flops", "count_params", "create_space",
    "NB201Arch", "NB201Config", "NB201Network", "NB201Space",
    "ResNetArch", "ResNetConfig", "ResNetSpace", "ResNetSupernet",
]
