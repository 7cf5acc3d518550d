"""三联 joint cases between neighbouring towns, and 联防 risk alerts, relayed through the county hub."""
