"""HTTP (FastAPI) at every node: the JSON API (docs/ARCHITECTURE.md, *Public contracts*) and the operator console."""
