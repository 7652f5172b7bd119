# Type stub for the SWIG-generated private module reactis.cimpl: everything
# is Any. The typed surface is the pure-Python package around it.
from typing import Any

def __getattr__(name: str) -> Any: ...
