"""One router module per resource; hazwatch.api.app includes them."""
