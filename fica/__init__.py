"""FiCA: feed-forward Gaussian codec avatars from a single portrait."""
from fica.avatar import Avatar
from fica.drive.expression import ARKIT_NAMES, Clip, Expression
from fica.errors import (FiCAError, ImageTooLarge, ImageTooSmall, MultipleFaces, NoFaceFound, UnsupportedInput,
                         WeightsUnavailable)
from fica.maps import CompleteUV, PartialUV
from fica.pipeline import FiCAOutput, FiCAPipeline
from fica.prior.gaussians import GaussianSet

__all__ = ["ARKIT_NAMES", "Avatar", "Clip", "CompleteUV", "Expression", "FiCAError", "FiCAOutput", "FiCAPipeline",
           "GaussianSet", "ImageTooLarge", "ImageTooSmall", "MultipleFaces", "NoFaceFound", "PartialUV",
           "UnsupportedInput", "WeightsUnavailable"]
