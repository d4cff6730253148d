"""Exceptions that carry a message meant for the user.

The CLI prints a :class:`LabelmendError` as one line on stderr and exits non-zero; anything else is a bug and
shows its traceback. Each subclass also derives from the builtin a Python user would catch.
"""


class LabelmendError(Exception):
    """Base class of the errors whose message alone tells the user what is wrong."""


class DataError(LabelmendError, ValueError):
    """A data folder, image file or label file is missing, malformed or inconsistent."""


class BundleError(LabelmendError, ValueError):
    """A model bundle is missing, incomplete, tampered with or of an unknown format."""


class InputError(LabelmendError, ValueError):
    """An image array handed to the runtime has the wrong shape, range or values."""


class InputTypeError(LabelmendError, TypeError):
    """An image handed to the runtime has the wrong type or dtype."""


class DeviceError(LabelmendError, RuntimeError):
    """The requested device (e.g. CUDA) is not available to onnxruntime here."""


class MissingDependencyError(LabelmendError, ImportError):
    """A package this feature needs is not installed; the message names the extra that installs it."""


class ClusterError(LabelmendError, RuntimeError):
    """A worker of a multi-worker run cannot be reached, at start-up or mid-training."""
