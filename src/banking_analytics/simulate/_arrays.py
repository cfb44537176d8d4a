"""Array type aliases shared by the simulator's modules."""

import numpy as np
from numpy.typing import NDArray

__all__ = ["F64", "I8", "I64"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
