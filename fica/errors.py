"""Errors a user can cause or meet. Every message is one clear sentence a UI can show as-is."""


class FiCAError(Exception):
    """Base class: anything FiCA reports to a user rather than crashing on."""


class UnsupportedInput(FiCAError):
    """The file is not a readable image or video, or has an unsupported type."""


class ImageTooSmall(FiCAError):
    """The portrait (or the face in it) is too small to build an avatar from."""


class ImageTooLarge(FiCAError):
    """The file or the image is larger than FiCA accepts."""


class NoFaceFound(FiCAError):
    """No face was detected in the portrait."""


class MultipleFaces(FiCAError):
    """More than one face was detected; FiCA builds one avatar per portrait."""


class WeightsUnavailable(FiCAError):
    """Learned weights could not be found, downloaded or read."""
