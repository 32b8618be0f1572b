"""CLI command groups; each module has `register(app)` and hazwatch.cli lists them."""
