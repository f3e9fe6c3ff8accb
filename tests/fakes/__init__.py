"""Small local stand-ins for the outside services a test must not reach."""
