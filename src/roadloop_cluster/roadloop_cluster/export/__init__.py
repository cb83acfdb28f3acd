"""Export of a training run: ONNX with a torch/onnxruntime parity check, then a signed bundle."""

from roadloop_cluster.export.bundle import export_bundle
from roadloop_cluster.export.onnx_export import OPSET, check_parity, export_onnx, load_run

__all__ = ["OPSET", "check_parity", "export_bundle", "export_onnx", "load_run"]
