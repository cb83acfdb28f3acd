"""The contracts between roadloop's parts, as code every side reads.

Each module here is the single definition of one interface that crosses a package or process
boundary (cluster -> vehicle, vehicle -> hub, builder -> trainer). A producer and its consumers
import the same definition, so a change to a contract is a change in one place that every side
sees at once, instead of prose that each side writes out again.
"""

from roadloop_core.contract.wire import TarStream

__all__ = ["TarStream"]
