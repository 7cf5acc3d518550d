"""HTTP (FastAPI) at every node: the JSON API of DESIGN §7 and the operator console."""
