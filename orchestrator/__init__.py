"""The orchestrator: campaign spec, the cycle's stages, the Prefect flow, storage and the `peirce` CLI."""

__version__ = "0.1.0"
