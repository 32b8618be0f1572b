"""One router module per resource; api.app includes them."""
