"""The contracts between roadloop's parts, as code every side reads.

Each module here is the single definition of one interface that crosses a package or process
boundary (cluster -> vehicle, vehicle -> hub, builder -> trainer). A producer and its consumers
import the same definition, so a change to a contract is a change in one place that every side
sees at once, instead of prose that each side writes out again.
"""

from roadloop_core.contract.dataset_index import DatasetIndex, read_dataset_index, write_dataset_index
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import ARRAYS, INPUTS, OUTPUTS, DatasetArray, ModelTensor, TensorSpec
from roadloop_core.contract.wire import TarStream

__all__: list[str] = [
    "ARRAYS",
    "INPUTS",
    "OUTPUTS",
    "DatasetArray",
    "DatasetIndex",
    "ModelTensor",
    "ObservationSpec",
    "TarStream",
    "TensorSpec",
    "read_dataset_index",
    "write_dataset_index",
]
