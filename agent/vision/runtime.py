"""The one TFLite runtime seam: ai_edge_litert first, tflite_runtime as the fallback.

Nothing else in Outpost imports either package; detectors and the plate reader call
``load_interpreter`` and get an object with the usual ``Interpreter`` methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from agent.errors import DriverFault


class Interpreter(Protocol):
    """The part of the TFLite ``Interpreter`` API Outpost uses."""

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> list[dict[str, Any]]: ...

    def get_output_details(self) -> list[dict[str, Any]]: ...

    def set_tensor(self, tensor_index: int, value: Any) -> None: ...

    def get_tensor(self, tensor_index: int) -> Any: ...

    def invoke(self) -> None: ...

    def resize_tensor_input(self, input_index: int, tensor_size: Any) -> None: ...


def _interpreter_class() -> tuple[type[Any], str]:
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRt

        return LiteRt, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter as TfliteRuntime

        return TfliteRuntime, "tflite_runtime"
    except ImportError:
        raise DriverFault(
            "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


def runtime_name() -> str:
    """Which package provides the interpreter ('ai_edge_litert' or 'tflite_runtime')."""
    return _interpreter_class()[1]


def load_interpreter(path: Path | str, threads: int = 2) -> Interpreter:
    """Load a ``.tflite`` file with ``threads`` CPU threads and allocate its tensors.

    Raises ``DriverFault`` naming the file when the runtime is missing or the file is not a
    model the runtime can load.
    """
    cls, _name = _interpreter_class()
    path = Path(path)
    if not path.is_file():
        raise DriverFault(f"model file {path} not found")
    try:
        interpreter = cls(model_path=str(path), num_threads=max(1, int(threads)))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise DriverFault(f"model file {path} could not be loaded: {exc}") from None
    result: Interpreter = interpreter
    return result
