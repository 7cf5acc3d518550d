"""The four services of a node: intake, routing, assessment, federation."""
