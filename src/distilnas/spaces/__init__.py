"""Search spaces, one module each, registered in :data:`SPACES`."""

from .base import SPACES, SearchSpace, build_space_config, check_data, count_flops, count_params, create_space, read_archs
from .nb201 import NB201Arch, NB201Config, NB201Network, NB201Space
from .mobilenet import MobileNetArch, MobileNetConfig, MobileNetNetwork, MobileNetSpace, MobileNetSupernet
from .resnet import ResNetArch, ResNetConfig, ResNetSpace, ResNetSupernet

__all__ = [
    "SPACES", "SearchSpace", "build_space_config", "check_data", "read_archs", "count_flops", "count_params", "create_space",
    "NB201Arch", "NB201Config", "NB201Network", "NB201Space",
    "MobileNetArch", "MobileNetConfig", "MobileNetNetwork", "MobileNetSpace", "MobileNetSupernet",
    "ResNetArch", "ResNetConfig", "ResNetSpace", "ResNetSupernet",
]
