"""lesionbn: exact probabilistic reasoning on discrete Bayesian networks, with a default
network for diagnosing motor-system lesions.

>>> from model import load_network
>>> net = load_network()
>>> sorted(net.posterior({"babinski": "present"})["lesion_type"].index)[:2]
['LMN', 'MIXED']
"""
import warnings as _warnings

# pgmpy announces its own deprecations on import; they are not the user's concern
_warnings.filterwarnings("ignore", category=FutureWarning, module=r"pgmpy(\..*)?$")

from .errors import (
    CaseDataError,
    EvidenceError,
    ImpossibleEvidenceError,
    LesionBNError,
    ModelFileError,
)
from .knowledge import Knowledge, read_knowledge
from .network import BatchResult, Network, load_network

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "CaseDataError",
    "EvidenceError",
    "ImpossibleEvidenceError",
    "Knowledge",
    "LesionBNError",
    "ModelFileError",
    "Network",
    "load_network",
    "read_knowledge",
    "__version__",
]
