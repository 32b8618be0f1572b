"""The HJ 212 link part: what stations' HJ 212 traffic says of their access (refused peers)."""
