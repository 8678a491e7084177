from typing import Any, Dict

__version__: str
__all__ = [
    "fit",
    "validate_spec",
    "cli_main",
    "__version__",
    "HyperfleetError",
    "ConfigError",
    "ExperimentExistsError",
    "StoreError",
    "TuneError",
]

class HyperfleetError(Exception): ...
class ConfigError(HyperfleetError): ...
class ExperimentExistsError(HyperfleetError): ...
class StoreError(HyperfleetError): ...
class TuneError(HyperfleetError): ...

def fit(
    spec_json: str,
    hooks: Any,
    resume: bool,
    python: str,
    cwd: str,
    resume_unfinished: bool = True,
    resume_errored: bool = False,
    restart_errored: bool = False,
) -> Dict[str, Any]: ...
def validate_spec(spec_json: str) -> None: ...
def cli_main(argv: list[str], python: str) -> int: ...
